-- API keys of the query side (screening, the change feed). The key itself is never stored: only an HMAC-SHA256
-- of its secret under a key derived from the master key, and its lookup secret (for the feed's RIC pseudonyms)
-- sealed under the master key.

CREATE TABLE api_keys (
    key_id               TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    scopes               TEXT NOT NULL,       -- comma-separated: screen, changes
    rate_limit           DOUBLE PRECISION CHECK (rate_limit IS NULL OR rate_limit > 0),
    secret_digest        BYTEA NOT NULL,
    sealed_lookup_secret BYTEA NOT NULL,
    created_at           BIGINT NOT NULL,
    revoked_at           BIGINT               -- NULL while the key works
);
