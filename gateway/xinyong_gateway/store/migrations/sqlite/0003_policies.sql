-- Adopted credit policies: every version stays on record; exactly one is active once one was adopted.

CREATE TABLE policies (
    version    TEXT PRIMARY KEY,
    text       TEXT NOT NULL,        -- the TOML as adopted
    adopted_at INTEGER NOT NULL,     -- unix microseconds (the latest adoption of this version)
    active     INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
CREATE UNIQUE INDEX policies_one_active ON policies (active) WHERE active = 1;
