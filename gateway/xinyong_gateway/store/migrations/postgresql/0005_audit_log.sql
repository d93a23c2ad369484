-- The audit log of operator actions (README "The audit log", SECURITY.md "The audit log"): append-only and
-- hash-chained. Each entry's hash is an HMAC-SHA256, under a key derived from the master key, of the previous
-- entry's hash and the entry's canonical JSON (xinyong_gateway/audit.py). Entry ids are given under a transaction
-- advisory lock (1, 2, 3, ... without gaps), not drawn from a sequence, so a missing id is a deleted entry and
-- concurrent writers keep one chain. audit_head holds the last entry written, with a MAC of its own, so that entries
-- deleted from the end are found as well. No row names a person: a subject is named by its masked identifier and
-- its blind-index key.
CREATE TABLE audit_log (
    entry_id  BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,         -- Unix time in microseconds
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
    entry_id BIGINT NOT NULL,
    hash     TEXT NOT NULL,
    mac      TEXT NOT NULL
);

-- Append-only for every connection: a changed, deleted or truncated entry needs the triggers dropped first (and
-- then `audit verify` finds it).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
