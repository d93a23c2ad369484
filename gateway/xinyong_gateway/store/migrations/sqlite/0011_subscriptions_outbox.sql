-- Subscriptions of platforms to status changes, and the outbox of their notifications. A projector's commit writes
-- the outbox rows of its feed entries in its own transaction, each with the next sequence of its subscription
-- (subscriptions.last_sequence), so a notification exists exactly when its change does. Dispatchers lease due rows
-- (leased_until), send them, and record the outcome.

CREATE TABLE subscriptions (
    subscription_id        TEXT PRIMARY KEY,
    key_id                 TEXT NOT NULL REFERENCES api_keys (key_id),
    url                    TEXT NOT NULL,
    lists                  TEXT NOT NULL,        -- comma-separated: black, watch, red
    subjects               TEXT,                 -- JSON list of the subjects asked for; NULL for every subject
    sealed_secret          BLOB NOT NULL,        -- whsec_ secret sealed under the master key (purpose subscription)
    sealed_previous_secret BLOB,                 -- the secret before a rotation, during its grace period
    previous_expires_at    INTEGER,
    status                 TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason        TEXT,
    last_sequence          INTEGER NOT NULL DEFAULT 0,
    failing_since          INTEGER,              -- the first failed attempt since the last success
    created_at             INTEGER NOT NULL,
    disabled_at            INTEGER
);
CREATE INDEX subscriptions_by_key ON subscriptions (key_id);

-- Bumped whenever the set of subscriptions a change is routed to changes (create, delete, disable, enable): a
-- projection commit routed under an older generation is refused and routed again.
CREATE TABLE subscription_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO subscription_generation (id, generation) VALUES (1, 0);

CREATE TABLE outbox (
    message_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    sequence        INTEGER NOT NULL,
    change_id       INTEGER NOT NULL REFERENCES status_changes (change_id),
    created_at      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (subscription_id, sequence)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
