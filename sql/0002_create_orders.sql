-- Orders belong to an account and disappear with it.
CREATE TABLE orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    total_cents  integer NOT NULL CHECK (total_cents >= 0),
    note         text,
    placed_at    timestamptz NOT NULL DEFAULT now()
);
