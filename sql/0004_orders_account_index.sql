-- A file whose only statement cannot run in a transaction runs without one, automatically.
-- The directive below says so explicitly; it is optional here.
-- release-runner: no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_account_id_placed_at_idx
    ON orders (account_id, placed_at DESC);
