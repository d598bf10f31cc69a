"""The database: the only wing that imports psycopg, and it holds no policy (what to retry, what
to refuse, what to report is run/'s). Small objects and functions the session uses, each module
imported by name where it is used:

- `connection`: open one connection, probe for poolers and read-only servers, classify errors
  (transient, a pool exhausted, the role's or the server's configuration).
- `lock`: the runner lock (`RunnerLock`), and the sessions that hold it or block a migration.
- `history`: the runner's history and deferred tables (`HistoryStore`), the rows a run writes
  (`RunContext`), and drizzle-kit's or Prisma's own history.
- `catalog`: the catalog reads, one query each.
- `execute`: the message that applies one migration with its history row.
- `watcher`: a second connection that names blockers and enforces the time budget.
"""
