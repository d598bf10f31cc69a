-- A constant default adds the column without rewriting the table.
-- release-runner: lock-timeout=10s
ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';
