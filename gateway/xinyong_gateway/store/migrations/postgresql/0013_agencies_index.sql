-- The public site's intermediaries column (/public/intermediaries) pages the agencies newest first: an index on the
-- kind the stored status names, in the order the page reads (a partial index: only agencies' files are in it).
CREATE INDEX subjects_agencies ON subjects (updated_at DESC, subject_key)
    WHERE id_type = 'uscc' AND status::jsonb -> 'intermediary' ->> 'kind' = 'intermediary';
