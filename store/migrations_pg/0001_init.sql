-- 0001 (PostgreSQL): the whole schema of SQLite migrations 0001–0010, plus
-- the tables only a cluster needs (key sets, the master token, cron tick
-- claims, members). Times are Unix nanoseconds (UTC) in BIGINT; 0 means
-- "never". JSON objects are TEXT (the store validates them; ::jsonb reads
-- them). Secrets are never stored in plain text: see store/migrations.

CREATE TABLE webtasks (
    container      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    code           TEXT    NOT NULL DEFAULT '',
    code_hash      TEXT    NOT NULL DEFAULT '',
    code_url       TEXT    NOT NULL DEFAULT '',
    meta           TEXT    NOT NULL DEFAULT '{}' CHECK (meta::jsonb IS NOT NULL),
    params         TEXT    NOT NULL DEFAULT '{}' CHECK (params::jsonb IS NOT NULL),
    secrets_sealed TEXT    NOT NULL DEFAULT '',
    secrets_kid    TEXT    NOT NULL DEFAULT '',
    pb             INTEGER CHECK (pb IS NULL OR pb IN (0, 1, 2)),
    mb             INTEGER NOT NULL DEFAULT 0,
    token          TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (container, name)
);
CREATE INDEX webtasks_secrets_kid ON webtasks (secrets_kid);

CREATE TABLE webtask_data (
    container  TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    data       TEXT   NOT NULL DEFAULT '{}',
    etag       TEXT   NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (container, name),
    FOREIGN KEY (container, name) REFERENCES webtasks (container, name) ON DELETE CASCADE
);

CREATE TABLE revoked_tokens (
    jti        TEXT   NOT NULL PRIMARY KEY,
    revoked_by TEXT   NOT NULL DEFAULT '',
    revoked_at BIGINT NOT NULL
);

CREATE TABLE container_limits (
    container          TEXT             NOT NULL PRIMARY KEY,
    memory_mb          BIGINT           NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    cpus               DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (cpus >= 0),
    pids               BIGINT           NOT NULL DEFAULT 0 CHECK (pids >= 0),
    exec_timeout_ms    BIGINT           NOT NULL DEFAULT 0 CHECK (exec_timeout_ms >= 0),
    max_concurrency    BIGINT           NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    updated_at         BIGINT           NOT NULL,
    max_response_bytes BIGINT           NOT NULL DEFAULT 0,
    max_webtasks       BIGINT           NOT NULL DEFAULT 0 CHECK (max_webtasks >= 0),
    max_cron_jobs      BIGINT           NOT NULL DEFAULT 0 CHECK (max_cron_jobs >= 0),
    max_storage_bytes  BIGINT           NOT NULL DEFAULT 0 CHECK (max_storage_bytes >= 0)
);

CREATE TABLE cron_jobs (
    container         TEXT   NOT NULL,
    name              TEXT   NOT NULL,
    token             TEXT   NOT NULL DEFAULT '',
    schedule          TEXT   NOT NULL,
    tz                TEXT   NOT NULL DEFAULT 'UTC',
    state             TEXT   NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'inactive')),
    meta              TEXT   NOT NULL DEFAULT '{}' CHECK (meta::jsonb IS NOT NULL),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_scheduled_at BIGINT NOT NULL DEFAULT 0,
    run_count         BIGINT NOT NULL DEFAULT 0,
    error_count       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (container, name),
    FOREIGN KEY (container, name) REFERENCES webtasks (container, name) ON DELETE CASCADE
);

CREATE TABLE cron_results (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    container    TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    scheduled_at BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    completed_at BIGINT NOT NULL,
    type         TEXT   NOT NULL CHECK (type IN ('success', 'error')),
    status_code  BIGINT NOT NULL DEFAULT 0,
    body         TEXT   NOT NULL DEFAULT '',
    headers      TEXT   NOT NULL DEFAULT '{}' CHECK (headers::jsonb IS NOT NULL),
    FOREIGN KEY (container, name) REFERENCES cron_jobs (container, name) ON DELETE CASCADE
);
CREATE INDEX cron_results_job ON cron_results (container, name, id);

-- One row per claimed tick of a job (ClaimCronTick): the primary key makes
-- exactly one claimer win a tick. state: running (lease until
-- lease_until), done (its result recorded), expired (its claimer did not
-- record a result in time: ExpireCronClaims recorded an error instead).
CREATE TABLE cron_claims (
    container   TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    tick        BIGINT NOT NULL,
    node        TEXT   NOT NULL,
    claimed_at  BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    state       TEXT   NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'expired')),
    PRIMARY KEY (container, name, tick),
    FOREIGN KEY (container, name) REFERENCES cron_jobs (container, name) ON DELETE CASCADE
);
CREATE INDEX cron_claims_lease ON cron_claims (state, lease_until);

CREATE TABLE code_blobs (
    hash       TEXT   PRIMARY KEY CHECK (length(hash) = 64),
    code       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    jti    TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL,
    status BIGINT NOT NULL
);

-- Module install state is per host (node): every host installs on demand.
CREATE TABLE node_modules (
    node       TEXT   NOT NULL DEFAULT '',
    name       TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('queued', 'available', 'failed')),
    error      TEXT   NOT NULL DEFAULT '',
    size_bytes BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, name, version)
);

CREATE TABLE transpiled (
    source_hash TEXT NOT NULL CHECK (length(source_hash) = 64),
    language    TEXT NOT NULL,
    code_hash   TEXT NOT NULL REFERENCES code_blobs (hash),
    PRIMARY KEY (source_hash, language)
);

-- The cluster's key sets (keyring.KeySet), each one's JSON sealed with
-- AES-256-GCM under the key-encryption key (never stored in the clear;
-- associated data "keyset/<kid>"). current is true for exactly one row.
CREATE TABLE key_sets (
    kid        TEXT    NOT NULL PRIMARY KEY,
    wrapped    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    current    BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX key_sets_one_current ON key_sets (current) WHERE current;

-- The cluster's master token, sealed under the key-encryption key
-- (associated data "master-token"); '' until the first daemon mints it.
CREATE TABLE cluster_master (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    sealed TEXT    NOT NULL DEFAULT ''
);
INSERT INTO cluster_master (id) VALUES (1);

-- The daemons of the cluster: each writes its row on start and then on a
-- heartbeat.
CREATE TABLE cluster_members (
    node_id      TEXT   NOT NULL PRIMARY KEY,
    url          TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
