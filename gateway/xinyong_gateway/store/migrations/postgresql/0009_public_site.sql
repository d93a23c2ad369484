-- The public disclosure site (/public/, web.public; store/public.py explains the name index).
-- Names an organisation is found by (its registered name, its shops' names), indexed by bigrams: `grams` holds the
-- hex of each pair of consecutive characters, under a GIN index (a query asks for all of its own).
CREATE TABLE public_names (
    subject_key TEXT NOT NULL REFERENCES subjects (subject_key),
    kind        TEXT NOT NULL CHECK (kind IN ('name', 'shop')),
    name        TEXT NOT NULL,
    grams       TEXT[] NOT NULL,
    PRIMARY KEY (subject_key, name)
);
CREATE INDEX public_names_by_gram ON public_names USING gin (grams);

-- Published credit commitments (commitment.published), the latest version of each.
CREATE TABLE public_commitments (
    subject_key   TEXT NOT NULL REFERENCES subjects (subject_key),
    commitment_id TEXT NOT NULL,
    published_at  BIGINT NOT NULL,    -- unix microseconds
    items         TEXT NOT NULL,      -- JSON array of the promises
    PRIMARY KEY (subject_key, commitment_id)
);

-- The list pages (black, red ...), newest first.
CREATE INDEX subjects_by_list ON subjects (((status::jsonb ->> 'list')), updated_at DESC);
