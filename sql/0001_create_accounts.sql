-- Accounts: the people who sign in.
CREATE TYPE account_status AS ENUM ('invited', 'active', 'suspended');

CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    status      account_status NOT NULL DEFAULT 'invited',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_email_key UNIQUE (email),
    CONSTRAINT accounts_email_shape CHECK (email LIKE '%_@_%')
);
