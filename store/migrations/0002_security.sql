-- 0002: token revocation. A revoked jti is refused on every request, and so
-- is every token whose ca (ancestor chain) contains it, which makes
-- revocation recursive over descendants without enumerating them.
-- Revocation is permanent: rows are never deleted. Times are Unix
-- nanoseconds (UTC).
CREATE TABLE revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    revoked_by TEXT    NOT NULL DEFAULT '',
    revoked_at INTEGER NOT NULL
);
