-- Credit files, their status, the change feed, and the projector's position in the inbox.

CREATE TABLE projector (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL      -- seq of the last inbox row applied (committed with its effects)
);

CREATE TABLE subjects (
    subject_key    TEXT PRIMARY KEY,   -- keyed blind index of "id_type:id": no resident id as a key
    id_type        TEXT NOT NULL CHECK (id_type IN ('uscc', 'ric')),
    display_id     TEXT NOT NULL,      -- a USCC in full, a resident id masked
    display_name   TEXT,               -- a company's name in full, a person's name masked
    sealed_id      BLOB NOT NULL,      -- the identifier, AES-256-GCM under the master key
    sealed_name    BLOB,
    state          TEXT NOT NULL,      -- the credit file (records, windows), canonical JSON
    status         TEXT NOT NULL,      -- the latest status snapshot, JSON
    next_change_at INTEGER,            -- when time alone may change the status (unix microseconds)
    updated_at     INTEGER NOT NULL
);
CREATE INDEX subjects_due ON subjects (next_change_at) WHERE next_change_at IS NOT NULL;

CREATE TABLE status_changes (
    change_id    INTEGER PRIMARY KEY AUTOINCREMENT,   -- the change feed's cursor
    subject_key  TEXT NOT NULL REFERENCES subjects (subject_key),
    snapshot     TEXT NOT NULL,        -- the full status after the change, JSON
    effective_at INTEGER NOT NULL,     -- the instant the change took effect
    recorded_at  INTEGER NOT NULL
);
CREATE INDEX status_changes_by_subject ON status_changes (subject_key, change_id);

CREATE TABLE archived_records (
    archive_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_key TEXT NOT NULL REFERENCES subjects (subject_key),
    record      TEXT NOT NULL,         -- a record that can no longer change any status, JSON
    archived_at INTEGER NOT NULL
);
CREATE INDEX archived_records_by_subject ON archived_records (subject_key, archive_id);
