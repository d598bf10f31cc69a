-- Who holds the runner's advisory lock (a bigint key shows as classid/objid, objsubid 1), and
-- for how long its session has been in its current state (idle_s), to tell a vanished runner.
SELECT a.pid, a.application_name,
       to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS backend_start,
       a.state, a.client_addr::text AS client_addr,
       round(extract(epoch FROM now() - a.state_change))::int AS idle_s
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = %(classid)s::bigint::oid AND l.objid = %(objid)s::bigint::oid
  AND l.objsubid = 1
