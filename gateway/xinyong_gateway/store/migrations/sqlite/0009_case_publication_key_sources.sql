-- When a case's outcome was published: the projector's time of the first commit in which an upheld objection
-- (a correction) or a granted repair ended its record, shown beside the `publish_due` deadline.
ALTER TABLE due_process_cases ADD COLUMN published_at INTEGER;

-- The sources an API key speaks for (comma-separated source ids): with the `cases` scope the key reads the
-- objections and repair applications those sources filed, and nobody else's.
ALTER TABLE api_keys ADD COLUMN sources TEXT NOT NULL DEFAULT '';
