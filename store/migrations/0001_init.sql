-- 0001: webtasks and their per-webtask storage.
-- Times are Unix nanoseconds (UTC). meta/params are JSON objects. Secrets are
-- never stored in plain text: secrets_sealed is the keyring's
-- base64(ciphertext+tag).base64(nonce) of the JSON object, sealed with
-- associated data "<container>/<name>" under key set secrets_kid.
CREATE TABLE webtasks (
    container      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    code           TEXT    NOT NULL DEFAULT '',
    code_hash      TEXT    NOT NULL DEFAULT '',
    code_url       TEXT    NOT NULL DEFAULT '',
    meta           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    params         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
    secrets_sealed TEXT    NOT NULL DEFAULT '',
    secrets_kid    TEXT    NOT NULL DEFAULT '',
    pb             INTEGER NOT NULL DEFAULT 0,
    mb             INTEGER NOT NULL DEFAULT 0,
    token          TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (container, name)
);

CREATE INDEX webtasks_secrets_kid ON webtasks (secrets_kid);

-- Per-webtask storage (ctx.storage): one JSON document with an etag,
-- removed with its webtask.
CREATE TABLE webtask_data (
    container  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    data       TEXT    NOT NULL DEFAULT '{}',
    etag       TEXT    NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (container, name),
    FOREIGN KEY (container, name) REFERENCES webtasks (container, name) ON DELETE CASCADE
);
