-- 0009: per-container quota overrides (wtctl limits set --max-webtasks …):
-- 0 inherits the daemon's --max-*-per-container flag.
ALTER TABLE container_limits ADD COLUMN max_webtasks      INTEGER NOT NULL DEFAULT 0 CHECK (max_webtasks >= 0);
ALTER TABLE container_limits ADD COLUMN max_cron_jobs     INTEGER NOT NULL DEFAULT 0 CHECK (max_cron_jobs >= 0);
ALTER TABLE container_limits ADD COLUMN max_storage_bytes INTEGER NOT NULL DEFAULT 0 CHECK (max_storage_bytes >= 0);
