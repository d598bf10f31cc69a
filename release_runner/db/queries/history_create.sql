-- The runner's history: one row per migration. Created under the runner lock, so racing
-- runners never trip over each other's CREATE.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.history (
    version          text PRIMARY KEY,
    name             text NOT NULL,
    checksum         text NOT NULL,
    transaction_mode text NOT NULL
        CHECK (transaction_mode IN ('transaction', 'no-transaction', 'baseline', 'imported')),
    status           text NOT NULL CHECK (status IN ('applied', 'started', 'failed')),
    applied_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms      integer,
    applied_by       text,
    run_id           text,
    app              text,
    machine          text,
    image            text,
    error            text
);
COMMENT ON TABLE {schema}.history IS
    'release-runner: migrations applied to this database; see the README before editing by hand';
-- Post-deploy migrations the release phase left for later, and the release that did.
CREATE TABLE IF NOT EXISTS {schema}.deferred (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    release_id  text,
    deferred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id      text
);
COMMENT ON TABLE {schema}.deferred IS
    'release-runner: post-deploy migrations waiting for every Machine to run the release that deferred them';
