-- The objects verify and snapshot look at, as two CTEs every catalog read begins with (catalog.sql,
-- health.sql): system schemas, the runner's own schema (%(history)s) and objects that belong to
-- extensions (they come with CREATE EXTENSION and differ between server builds) are left out.
WITH nsp AS (
    SELECT n.oid, n.nspname
    FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', %(history)s)
      AND n.nspname NOT LIKE 'pg\_toast%%'
      AND n.nspname NOT LIKE 'pg\_temp\_%%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                        AND d.deptype = 'e')
),
rels AS (
    -- An extension's objects are left out; so are identity sequences (an internal dependency
    -- on their column: they are the column's). A partitioned parent has an internal
    -- dependency too, and is kept.
    SELECT c.oid, nsp.nspname AS schema, c.relname AS name, c.relkind, c.relrowsecurity
    FROM pg_class c
    JOIN nsp ON nsp.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND (d.deptype = 'e' OR (d.deptype = 'i' AND c.relkind = 'S')))
)
