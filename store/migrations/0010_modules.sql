-- 0008: npm module provisioning and transpiled code.
--
-- node_modules: one row per requested name@version on this host (install
-- state is per host: every host installs on demand). state is queued,
-- available or failed; error keeps npm's message of a failed install;
-- size_bytes is the installed tree's size (0 until available); times are
-- Unix nanoseconds (UTC).
CREATE TABLE node_modules (
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'available', 'failed')),
    error      TEXT    NOT NULL DEFAULT '',
    size_bytes INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

-- transpiled: the runnable CommonJS of source code that needed a transform
-- (ES module syntax, "use latest", TypeScript), content-addressed: the
-- source's hash and language name the code blob holding the output.
CREATE TABLE transpiled (
    source_hash TEXT NOT NULL CHECK (length(source_hash) = 64),
    language    TEXT NOT NULL,
    code_hash   TEXT NOT NULL REFERENCES code_blobs (hash),
    PRIMARY KEY (source_hash, language)
) WITHOUT ROWID;
