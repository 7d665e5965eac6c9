-- 0003: per-container sandbox limit overrides (PUT /api/admin/containers/{c}/limits).
-- A zero column inherits the daemon default. updated_at is Unix nanoseconds (UTC).
CREATE TABLE container_limits (
    container       TEXT    NOT NULL PRIMARY KEY,
    memory_mb       INTEGER NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    cpus            REAL    NOT NULL DEFAULT 0 CHECK (cpus >= 0),
    pids            INTEGER NOT NULL DEFAULT 0 CHECK (pids >= 0),
    exec_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (exec_timeout_ms >= 0),
    max_concurrency INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    updated_at      INTEGER NOT NULL
);
