-- 0005: inline code of unnamed webtask tokens (POST /api/tokens/issue with
-- code and no jtn), content-addressed: hash is the hex sha256 of code and
-- the token's url claim names it (webtask:///code/{hash}). Rows are never
-- updated; created_at is Unix nanoseconds (UTC).
CREATE TABLE code_blobs (
    hash       TEXT    PRIMARY KEY CHECK (length(hash) = 64),
    code       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
