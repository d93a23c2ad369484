-- The audit log of operator actions (README "The audit log", SECURITY.md "The audit log"): append-only and
-- hash-chained. Each entry's hash is an HMAC-SHA256, under a key derived from the master key, of the previous
-- entry's hash and the entry's canonical JSON (xinyong_gateway/audit.py). Entry ids are given under the write lock
-- (1, 2, 3, ... without gaps), not drawn from a sequence, so a missing id is a deleted entry. audit_head holds the
-- last entry written, with a MAC of its own, so that entries deleted from the end are found as well. No row names
-- a person: a subject is named by its masked identifier and its blind-index key.
CREATE TABLE audit_log (
    entry_id  INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,        -- Unix time in microseconds
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   TEXT NOT NULL,           -- a JSON object, canonical form
    prev_hash TEXT NOT NULL,           -- hex; the genesis value (64 zeros) for entry 1
    hash      TEXT NOT NULL            -- hex
);
CREATE INDEX audit_log_by_action ON audit_log (action, entry_id);

CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),   -- one row, written with every entry
    entry_id INTEGER NOT NULL,
    hash     TEXT NOT NULL,
    mac      TEXT NOT NULL
);

-- Append-only for every connection: a changed or deleted entry needs the triggers dropped first (and then
-- `audit verify` finds it).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
