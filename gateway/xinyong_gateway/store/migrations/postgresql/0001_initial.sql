-- The whole schema as of SQLite 0001-0004: sources and their keys, the inbox (the raw event log, source of
-- truth), credit files, the change feed, the archive, adopted policies and the projection partitions.
-- Instants are unix microseconds (BIGINT); sealed material is BYTEA. Tables are created unqualified, in the
-- first schema of the connection's search_path.
--
-- inbox.seq and status_changes.change_id are identity columns with the default cache of 1: every value comes
-- from the one sequence, in order, while the backend holds the table's advisory lock (see postgresql.py), so
-- rows commit in seq order. A larger cache would hand each connection its own block and break that order.

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE sources (
    source_id   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('marketplace', 'courier', 'regulator')),
    name        TEXT NOT NULL,
    uscc        TEXT,
    rate_limit  DOUBLE PRECISION CHECK (rate_limit IS NULL OR rate_limit > 0),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE source_keys (
    key_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id   TEXT NOT NULL REFERENCES sources (source_id),
    scheme      TEXT NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    material    BYTEA NOT NULL,   -- v1: secret sealed under the master key; v1a: raw Ed25519 public key
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT            -- NULL: current key; otherwise the end of its rotation grace period
);
CREATE INDEX source_keys_by_source ON source_keys (source_id);

CREATE TABLE inbox (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id         TEXT NOT NULL REFERENCES sources (source_id),
    webhook_id        TEXT NOT NULL,
    body_digest       BYTEA NOT NULL,    -- keyed SHA-256 of the raw body: duplicate vs conflict
    event_type        TEXT NOT NULL,
    webhook_timestamp BIGINT NOT NULL,
    signature         TEXT NOT NULL,
    received_at       BIGINT NOT NULL,
    body              BYTEA NOT NULL,    -- raw body sealed with AES-256-GCM (never plaintext on disk)
    partitions        INTEGER NOT NULL DEFAULT 65535,   -- bit mask of the projection partitions it concerns
    UNIQUE (source_id, webhook_id)
);

-- Subjects are split by their key's first hex digit into 16 partitions, each with its own position in the
-- inbox, so that several projectors can share the work (one holder per partition at a time). Every partition
-- has its row from the start: a projector's commit locks the rows it writes for (SELECT ... FOR UPDATE).
CREATE TABLE projection_partitions (
    partition INTEGER PRIMARY KEY CHECK (partition BETWEEN 0 AND 15),
    position  BIGINT NOT NULL,   -- seq of the last inbox row applied to this partition's subjects
    version   BIGINT NOT NULL    -- commits that wrote the partition: a commit expects the version it read
);
INSERT INTO projection_partitions (partition, position, version) SELECT n, 0, 0 FROM generate_series(0, 15) AS n;

CREATE TABLE subjects (
    subject_key    TEXT PRIMARY KEY,   -- keyed blind index of "id_type:id": no resident id as a key
    id_type        TEXT NOT NULL CHECK (id_type IN ('uscc', 'ric')),
    display_id     TEXT NOT NULL,      -- a USCC in full, a resident id masked
    display_name   TEXT,               -- a company's name in full, a person's name masked
    sealed_id      BYTEA NOT NULL,     -- the identifier, AES-256-GCM under the master key
    sealed_name    BYTEA,
    state          TEXT NOT NULL,      -- the credit file (records, windows), canonical JSON
    status         TEXT NOT NULL,      -- the latest status snapshot, JSON
    next_change_at BIGINT,             -- when time alone may change the status (unix microseconds)
    updated_at     BIGINT NOT NULL,
    partition      INTEGER NOT NULL CHECK (partition BETWEEN 0 AND 15)
);
CREATE INDEX subjects_due_by_partition ON subjects (partition, next_change_at) WHERE next_change_at IS NOT NULL;

CREATE TABLE status_changes (
    change_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the change feed's cursor
    subject_key  TEXT NOT NULL REFERENCES subjects (subject_key),
    snapshot     TEXT NOT NULL,        -- the full status after the change, JSON
    effective_at BIGINT NOT NULL,      -- the instant the change took effect
    recorded_at  BIGINT NOT NULL
);
CREATE INDEX status_changes_by_subject ON status_changes (subject_key, change_id);

CREATE TABLE archived_records (
    archive_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_key TEXT NOT NULL REFERENCES subjects (subject_key),
    record      TEXT NOT NULL,         -- a record that can no longer change any status, JSON
    archived_at BIGINT NOT NULL
);
CREATE INDEX archived_records_by_subject ON archived_records (subject_key, archive_id);

-- Adopted credit policies: every version stays on record; exactly one is active once one was adopted.
CREATE TABLE policies (
    version    TEXT PRIMARY KEY,
    text       TEXT NOT NULL,          -- the TOML as adopted
    adopted_at BIGINT NOT NULL,        -- unix microseconds (the latest adoption of this version)
    active     BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX policies_one_active ON policies (active) WHERE active;
