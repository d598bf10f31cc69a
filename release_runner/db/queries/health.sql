-- What `verify` checks when there is no snapshot (drift.health): the INVALID indexes and the
-- NOT VALID constraints, as catalog.sql's rows, and how many indexes and constraints were looked
-- at. Runs after scope.sql's CTEs (nsp, rels); reading the whole schema for this would cost a
-- large database tens of milliseconds for nothing.
SELECT json_build_object(
  'constraints', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, c.conname, c.contype, pg_get_constraintdef(c.oid), c.convalidated))
        FILTER (WHERE NOT c.convalidated), '[]')
    FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
    WHERE c.contype IN ('p', 'u', 'c', 'f', 'x')),
  'indexes', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, ic.relname, quote_ident(ic.relname), pg_get_indexdef(i.indexrelid),
        i.indisunique, i.indisvalid)) FILTER (WHERE NOT i.indisvalid), '[]')
    FROM pg_index i
    JOIN rels r ON r.oid = i.indrelid
    JOIN pg_class ic ON ic.oid = i.indexrelid),
  'checked', (SELECT count(*) FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
              WHERE c.contype IN ('p', 'u', 'c', 'f', 'x'))
             + (SELECT count(*) FROM pg_index i JOIN rels r ON r.oid = i.indrelid)
)
