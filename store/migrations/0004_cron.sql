-- 0005: cron jobs (PUT /api/cron/{c}/{n}) and their run history.
-- Times are Unix nanoseconds (UTC); 0 means "never". A job is bound to the
-- named webtask of the same name and is deleted with it (cascade); its
-- results are deleted with the job. token is the webtask token sent as
-- "Authorization: Bearer" on each run ('' = the webtask's current token).
CREATE TABLE cron_jobs (
    container         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    token             TEXT    NOT NULL DEFAULT '',
    schedule          TEXT    NOT NULL,
    tz                TEXT    NOT NULL DEFAULT 'UTC',
    state             TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'inactive')),
    meta              TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_scheduled_at INTEGER NOT NULL DEFAULT 0,
    run_count         INTEGER NOT NULL DEFAULT 0,
    error_count       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (container, name),
    FOREIGN KEY (container, name) REFERENCES webtasks (container, name) ON DELETE CASCADE
);

-- The last runs of each job (the store keeps 100 per job, trimmed on insert).
-- headers is a JSON object of response header names to values.
CREATE TABLE cron_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    container    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scheduled_at INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    completed_at INTEGER NOT NULL,
    type         TEXT    NOT NULL CHECK (type IN ('success', 'error')),
    status_code  INTEGER NOT NULL DEFAULT 0,
    body         TEXT    NOT NULL DEFAULT '',
    headers      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(headers)),
    FOREIGN KEY (container, name) REFERENCES cron_jobs (container, name) ON DELETE CASCADE
);

CREATE INDEX cron_results_job ON cron_results (container, name, id);
