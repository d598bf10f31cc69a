-- Sessions blocking the given backend: what `migration.waiting` reports.
SELECT a.pid, a.application_name, a.state,
       round(extract(epoch FROM now() - a.xact_start))::int AS transaction_age_s,
       left(a.query, 200) AS query
FROM pg_stat_activity a
WHERE a.pid = ANY (pg_blocking_pids(%(pid)s))
ORDER BY a.pid
