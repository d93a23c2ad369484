-- The gateway's attestation signing keys (Ed25519, JWS alg EdDSA). The public half is published at
-- /.well-known/jwks.json under its kid; the private half (the 32-byte seed) is kept only sealed under the master key
-- (MasterKey.seal_signing_key, bound to the kid). One key is current (retired_at NULL) and signs; rotated-out keys
-- stay, retired, so that attestations they signed keep verifying.

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,     -- RFC 7638 JWK thumbprint of the public key
    algorithm          TEXT NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key         BYTEA NOT NULL,       -- raw 32 bytes
    sealed_private_key BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT                -- NULL for the current key
);

-- At most one current key: every row in this partial index has the same value.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
