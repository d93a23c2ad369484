-- Subscriptions of platforms to status changes, and the outbox of their notifications (see the SQLite migration
-- 0011 for the design). Dispatchers lease due rows with FOR UPDATE SKIP LOCKED, so several share the work.

CREATE TABLE subscriptions (
    subscription_id        TEXT PRIMARY KEY,
    key_id                 TEXT NOT NULL REFERENCES api_keys (key_id),
    url                    TEXT NOT NULL,
    lists                  TEXT NOT NULL,
    subjects               TEXT,
    sealed_secret          BYTEA NOT NULL,
    sealed_previous_secret BYTEA,
    previous_expires_at    BIGINT,
    status                 TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason        TEXT,
    last_sequence          BIGINT NOT NULL DEFAULT 0,
    failing_since          BIGINT,
    created_at             BIGINT NOT NULL,
    disabled_at            BIGINT
);
CREATE INDEX subscriptions_by_key ON subscriptions (key_id);

CREATE TABLE subscription_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO subscription_generation (id, generation) VALUES (1, 0);

CREATE TABLE outbox (
    message_id      BIGSERIAL PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
    sequence        BIGINT NOT NULL,
    change_id       BIGINT NOT NULL REFERENCES status_changes (change_id),
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    BIGINT,
    UNIQUE (subscription_id, sequence)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
