-- 0011: cron tick claims and cluster members (the same tables as on
-- PostgreSQL, where several daemons share the store; on SQLite the one
-- daemon claims every tick). Times are Unix nanoseconds (UTC).
--
-- cron_claims: one row per claimed tick of a job (ClaimCronTick): the
-- primary key makes exactly one claimer win a tick. state: running (lease
-- until lease_until), done (its result recorded), expired (its claimer did
-- not record a result in time: ExpireCronClaims recorded an error).
CREATE TABLE cron_claims (
    container   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    tick        INTEGER NOT NULL,
    node        TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'expired')),
    PRIMARY KEY (container, name, tick),
    FOREIGN KEY (container, name) REFERENCES cron_jobs (container, name) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX cron_claims_lease ON cron_claims (state, lease_until);

-- cluster_members: the daemons sharing the store, each heartbeating its row.
CREATE TABLE cluster_members (
    node_id      TEXT    NOT NULL PRIMARY KEY,
    url          TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;
