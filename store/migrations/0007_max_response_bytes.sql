-- The response byte budget of a container (0: the daemon's).
ALTER TABLE container_limits ADD COLUMN max_response_bytes INTEGER NOT NULL DEFAULT 0;
