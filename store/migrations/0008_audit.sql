-- 0008: the audit log of management actions (GET /api/admin/audit): when,
-- the caller token's id (jti), the action (method and route), its target
-- (the request path, never its query: ?key= carries tokens; for a
-- revocation the revoked jti) and the answer's status. Never a secret or a
-- token. at is Unix nanoseconds (UTC). Rows are only added; the store
-- keeps the newest 100000.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    jti    TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    status INTEGER NOT NULL
);
