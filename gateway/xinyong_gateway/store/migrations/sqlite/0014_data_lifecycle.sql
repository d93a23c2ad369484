-- Retention (README "Retention"): an inbox row whose body was erased keeps its digest, type, source and times; its
-- body is replaced by a sealed tombstone that holds the facts without the natural persons' identities, and
-- erased_at says when. A subject whose every event was erased forgets its sealed identifier and name.
-- (The master key's index keys live in meta, row 'keyring': crypto.py, "Sealing keys and index keys".)
ALTER TABLE inbox ADD COLUMN erased_at INTEGER;
ALTER TABLE subjects ADD COLUMN identity_erased_at INTEGER;
