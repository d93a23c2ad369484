-- Sources, their keys, and the inbox (the raw event log, source of truth).
-- Instants are unix microseconds (INTEGER).

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE sources (
    source_id   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('marketplace', 'courier', 'regulator')),
    name        TEXT NOT NULL,
    uscc        TEXT,
    rate_limit  REAL CHECK (rate_limit IS NULL OR rate_limit > 0),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);

CREATE TABLE source_keys (
    key_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   TEXT NOT NULL REFERENCES sources (source_id),
    scheme      TEXT NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    material    BLOB NOT NULL,   -- v1: secret sealed under the master key; v1a: raw Ed25519 public key
    fingerprint TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER          -- NULL: current key; otherwise the end of its rotation grace period
);
CREATE INDEX source_keys_by_source ON source_keys (source_id);

CREATE TABLE inbox (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id         TEXT NOT NULL REFERENCES sources (source_id),
    webhook_id        TEXT NOT NULL,
    body_digest       BLOB NOT NULL,   -- keyed SHA-256 of the raw body: duplicate vs conflict
    event_type        TEXT NOT NULL,
    webhook_timestamp INTEGER NOT NULL,
    signature         TEXT NOT NULL,
    received_at       INTEGER NOT NULL,
    body              BLOB NOT NULL,   -- raw body sealed with AES-256-GCM (never plaintext on disk)
    UNIQUE (source_id, webhook_id)
);
