-- The public disclosure site (/public/, web.public; store/public.py explains the name index).
-- Names an organisation is found by (its registered name, its shops' names), indexed by bigrams: `grams` holds the
-- hex of each pair of consecutive characters, separated by spaces, and the FTS5 index below holds those tokens.
CREATE TABLE public_names (
    subject_key TEXT NOT NULL REFERENCES subjects (subject_key),
    kind        TEXT NOT NULL CHECK (kind IN ('name', 'shop')),
    name        TEXT NOT NULL,
    grams       TEXT NOT NULL,
    PRIMARY KEY (subject_key, name)
);
CREATE VIRTUAL TABLE public_names_fts USING fts5 (
    grams, content = 'public_names', content_rowid = 'rowid', tokenize = 'unicode61'
);
CREATE TRIGGER public_names_indexed AFTER INSERT ON public_names
BEGIN
    INSERT INTO public_names_fts (rowid, grams) VALUES (new.rowid, new.grams);
END;

-- Published credit commitments (commitment.published), the latest version of each.
CREATE TABLE public_commitments (
    subject_key   TEXT NOT NULL REFERENCES subjects (subject_key),
    commitment_id TEXT NOT NULL,
    published_at  INTEGER NOT NULL,   -- unix microseconds
    items         TEXT NOT NULL,      -- JSON array of the promises
    PRIMARY KEY (subject_key, commitment_id)
);

-- The list pages (black, red ...), newest first.
CREATE INDEX subjects_by_list ON subjects (json_extract(status, '$.list'), updated_at DESC);
