-- The whole user schema in one round trip, as JSON: what `verify` and `snapshot` compare. Runs
-- after scope.sql's CTEs (nsp, rels).
SELECT json_build_object(
  'schemas', (SELECT coalesce(json_agg(nspname), '[]') FROM nsp WHERE nspname <> 'public'),
  'tables', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, r.relkind, r.relrowsecurity, c.relforcerowsecurity, c.relpersistence,
        c.relreplident,
        CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END,
        CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, r.oid) END,
        inh.parents)), '[]')
    FROM rels r JOIN pg_class c ON c.oid = r.oid
    LEFT JOIN (SELECT inhrelid, json_agg(inhparent::regclass::text ORDER BY inhseqno) AS parents
               FROM pg_inherits GROUP BY inhrelid) inh ON inh.inhrelid = r.oid
    WHERE r.relkind IN ('r', 'p')),
  -- The most numerous rows, so by column (one array per field, Python zips them): building
  -- an array per row costs a fifth more on a large schema.
  'columns', (
    SELECT json_build_array(
        array_agg(r.schema), array_agg(r.name), array_agg(a.attname),
        array_agg(format_type(a.atttypid, a.atttypmod)), array_agg(a.attnotnull),
        array_agg(CASE WHEN a.atthasdef AND a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END),
        array_agg(a.attidentity),
        array_agg(CASE WHEN a.atthasdef AND a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END),
        -- 0: not collatable, 100: the database default; anything else was asked for.
        array_agg(CASE WHEN a.attcollation NOT IN (0, 100) THEN a.attcollation::regcollation::text END),
        -- SET STORAGE other than the type's own, and column-level GRANTs (null: none)
        array_agg(CASE WHEN a.attstorage <> ty.typstorage THEN a.attstorage END),
        json_agg(a.attacl::text[]))  -- json: array_agg cannot hold null or uneven arrays
    FROM rels r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON a.atthasdef AND ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE r.relkind IN ('r', 'p')),
  -- Sequences that belong to a column: an identity column's (its options), and an OWNED BY
  -- (serial, or said by hand).
  'sequence_columns', (
    SELECT coalesce(json_agg(json_build_array(
        d.deptype, sn.nspname, sc.relname, tn.nspname, tc.relname, a.attname,
        s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)), '[]')
    FROM pg_depend d
    JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = sc.relnamespace
    JOIN pg_sequence s ON s.seqrelid = sc.oid
    JOIN pg_class tc ON tc.oid = d.refobjid
    JOIN nsp tn ON tn.oid = tc.relnamespace
    JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')),
  'constraints', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, c.conname, c.contype, pg_get_constraintdef(c.oid), c.convalidated)), '[]')
    FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
    WHERE c.contype IN ('p', 'u', 'c', 'f', 'x')),
  'indexes', (
    -- The index's own name is cut from its definition in Python (a regular expression here
    -- costs more than fetching the definition).
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, ic.relname, quote_ident(ic.relname), pg_get_indexdef(i.indexrelid),
        i.indisunique, i.indisvalid)), '[]')
    FROM pg_index i
    JOIN rels r ON r.oid = i.indrelid
    JOIN pg_class ic ON ic.oid = i.indexrelid),
  'enums', (
    SELECT coalesce(json_agg(json_build_array(nsp.nspname, t.typname,
        (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))), '[]')
    FROM pg_type t JOIN nsp ON nsp.oid = t.typnamespace
    WHERE t.typtype = 'e'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')),
  'sequences', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
        s.seqmin, s.seqmax, s.seqcycle)), '[]')
    FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid),
  'views', (
    SELECT coalesce(json_agg(json_build_array(r.schema, r.name, r.relkind, pg_get_viewdef(r.oid, true),
        -- security_invoker, check_option and the like, sorted
        (SELECT json_agg(o ORDER BY o) FROM unnest(c.reloptions) o))), '[]')
    FROM rels r JOIN pg_class c ON c.oid = r.oid WHERE r.relkind IN ('v', 'm')),
  'functions', (
    SELECT coalesce(json_agg(json_build_array(
        nsp.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
        pg_get_function_result(p.oid), l.lanname, p.provolatile, p.prosecdef, p.proisstrict,
        coalesce(p.proconfig, '{}'),
        -- The whole definition (body as written, STRICT, SET, PARALLEL, defaults, COST),
        -- hashed by objects.py; an aggregate has none, so its parts stand for it.
        CASE WHEN p.prokind = 'a'
             THEN (SELECT concat_ws(' ', a.aggtransfn::regproc, a.aggfinalfn::regproc,
                                   a.aggcombinefn::regproc, format_type(a.aggtranstype, NULL),
                                   a.agginitval, a.aggkind)
                   FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
             ELSE pg_get_functiondef(p.oid) END)), '[]')
    FROM pg_proc p
    JOIN nsp ON nsp.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')),
  'triggers', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, tg.tgname,
        regexp_replace(pg_get_triggerdef(tg.oid), '^CREATE (CONSTRAINT )?TRIGGER \S+ ', 'CREATE \1TRIGGER '),
        tg.tgenabled)), '[]')
    FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal),
  'extensions', (
    SELECT coalesce(json_agg(json_build_array(e.extname, n.nspname, e.extversion)), '[]')
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname <> 'plpgsql'),
  'domains', (
    SELECT coalesce(json_agg(json_build_array(nsp.nspname, t.typname,
        format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
        (SELECT json_agg(json_build_array(c.conname, pg_get_constraintdef(c.oid), c.convalidated)
                         ORDER BY c.conname)
         FROM pg_constraint c WHERE c.contypid = t.oid))), '[]')
    FROM pg_type t JOIN nsp ON nsp.oid = t.typnamespace
    WHERE t.typtype = 'd'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')),
  'composites', (
    SELECT coalesce(json_agg(json_build_array(nsp.nspname, t.typname,
        (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
         FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped))), '[]')
    FROM pg_type t JOIN nsp ON nsp.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid
    WHERE t.typtype = 'c' AND c.relkind = 'c'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')),
  'rules', (
    SELECT coalesce(json_agg(json_build_array(r.schema, r.name, rw.rulename, pg_get_ruledef(rw.oid, true))), '[]')
    FROM pg_rewrite rw JOIN rels r ON r.oid = rw.ev_class
    WHERE rw.rulename <> '_RETURN'),
  -- Owners and privileges (a missing ACL is spelled out as its default, so that a GRANT undone
  -- by a REVOKE compares equal); `runner` is the role reading, whose name Python replaces, and
  -- Python sorts the ACL items (cheaper there than a sorted aggregate per object).
  'runner', current_user,
  'privileges', (
    SELECT coalesce(json_agg(json_build_array(kind, name, owner, acl)), '[]') FROM (
      SELECT CASE WHEN r.relkind IN ('r', 'p') THEN 'table' WHEN r.relkind IN ('v', 'm') THEN 'view'
                  ELSE 'sequence' END AS kind,
             r.schema || '.' || r.name AS name, pg_get_userbyid(c.relowner) AS owner,
             coalesce(c.relacl, acldefault(CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                           c.relowner))::text[] AS acl
      FROM rels r JOIN pg_class c ON c.oid = r.oid
      UNION ALL
      SELECT 'function', nsp.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
             pg_get_userbyid(p.proowner),
             coalesce(p.proacl, acldefault('f', p.proowner))::text[]
      FROM pg_proc p JOIN nsp ON nsp.oid = p.pronamespace
      WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
      UNION ALL
      SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner),
             coalesce(n.nspacl, acldefault('n', n.nspowner))::text[]
      FROM pg_namespace n JOIN nsp ON nsp.oid = n.oid
      UNION ALL
      -- enums, domains and composite types (USAGE on a type decides who may use its columns)
      SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' ELSE 'type' END,
             nsp.nspname || '.' || t.typname, pg_get_userbyid(t.typowner),
             coalesce(t.typacl, acldefault('T', t.typowner))::text[]
      FROM pg_type t JOIN nsp ON nsp.oid = t.typnamespace
      WHERE (t.typtype IN ('e', 'd')
             OR t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    ) owned),
  -- ALTER DEFAULT PRIVILEGES: what objects created later grant, by role, schema and kind.
  'default_privileges', (
    SELECT coalesce(json_agg(json_build_array(
        pg_get_userbyid(da.defaclrole), n.nspname, da.defaclobjtype, da.defaclacl::text[])), '[]')
    FROM pg_default_acl da LEFT JOIN pg_namespace n ON n.oid = da.defaclnamespace
    WHERE n.oid IS NULL OR n.nspname NOT IN ('pg_catalog', 'information_schema', %(history)s)),
  'statistics', (
    SELECT coalesce(json_agg(json_build_array(r.schema, r.name, s.stxname, pg_get_statisticsobjdef(s.oid))), '[]')
    FROM pg_statistic_ext s JOIN rels r ON r.oid = s.stxrelid),
  'policies', (
    SELECT coalesce(json_agg(json_build_array(
        r.schema, r.name, po.polname, po.polcmd, po.polpermissive,
        (SELECT json_agg(role ORDER BY role)
         FROM (SELECT CASE WHEN x = 0 THEN 'public' ELSE pg_get_userbyid(x)::text END AS role
               FROM unnest(po.polroles) x) roles),
        pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))), '[]')
    FROM pg_policy po JOIN rels r ON r.oid = po.polrelid)
)
