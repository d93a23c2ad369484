-- Each organisation's standing (0017) also carries what its public page shows when that page is its summary and
-- published commitments alone (web/public/standings.py keeps them in memory; web/public/site.py answers such a page
-- from there, reading only the commitments of one that has some): the name and code as its status shows them, its
-- score, measures and policy version, whether it has published commitments (`committed`: a busy merchant may have
-- hundreds, so they are not copied here), and `summary_only`, set when the page has nothing else to show: no reason
-- in publicity, no intermediary part (the agency section; its status then has an `intermediary` member), and no
-- objection ever filed against it (`due_process_cases`, whose rows stay: stricter than the page needs, which shows
-- only objections under way). A standing marked so is such a page for sure; any other page is read from the store.
--
-- Nothing here parses the file (`state`): a busy merchant's runs to hundreds of kilobytes, and the triggers run on
-- every write of it.
--
-- One view says how a subject's row becomes its standing; the triggers rewrite a standing whenever the view's row
-- for it differs from the stored one (delete, then insert: the new row takes the next seq), in the transaction that
-- wrote the subject, its first commitment or its first objection. The triggers share one body: SQLite has no
-- procedures.
ALTER TABLE public_standings ADD COLUMN name TEXT;
ALTER TABLE public_standings ADD COLUMN score INTEGER;
ALTER TABLE public_standings ADD COLUMN measures TEXT;         -- JSON array, as in the status
ALTER TABLE public_standings ADD COLUMN policy_version TEXT;
ALTER TABLE public_standings ADD COLUMN committed INTEGER NOT NULL DEFAULT 0;   -- has published commitments
ALTER TABLE public_standings ADD COLUMN summary_only INTEGER NOT NULL DEFAULT 0;

CREATE INDEX due_process_cases_by_subject ON due_process_cases (subject_key, kind);

CREATE VIEW public_standing_rows AS
SELECT subject_key,
       display_id AS code,
       json_extract(status, '$.list') AS list,
       json_extract(status, '$.grade') AS grade,
       next_change_at,
       json_extract(status, '$.subject.name') AS name,
       json_extract(status, '$.score') AS score,
       json_extract(status, '$.measures') AS measures,
       json_extract(status, '$.policy_version') AS policy_version,
       EXISTS (SELECT 1 FROM public_commitments c WHERE c.subject_key = subjects.subject_key) AS committed,
       CASE
           WHEN state = '' THEN 0   -- a file not yet worked out again (0006): its page needs the store
           WHEN json_array_length(status, '$.reasons') IS 0
                AND json_extract(status, '$.subject.id') IS display_id
                AND json_type(status, '$.intermediary') IS NULL
                AND NOT EXISTS (SELECT 1 FROM due_process_cases d
                                WHERE d.subject_key = subjects.subject_key AND d.kind = 'objection')
           THEN 1
           ELSE 0
       END AS summary_only
FROM subjects
WHERE id_type = 'uscc';

DROP TRIGGER public_standings_on_insert;
DROP TRIGGER public_standings_on_update;

DELETE FROM public_standings;
INSERT INTO public_standings (code, list, grade, next_change_at, name, score, measures, policy_version, committed,
                              summary_only)
    SELECT code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
    FROM public_standing_rows ORDER BY code;

-- Most writes of a file (a record that moves nothing the badge or the page's summary shows) delete nothing and
-- insert nothing.
CREATE TRIGGER public_standings_on_insert AFTER INSERT ON subjects WHEN new.id_type = 'uscc'
BEGIN
    DELETE FROM public_standings
    WHERE code = (SELECT code FROM public_standing_rows WHERE subject_key = new.subject_key)
        AND (list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only)
            IS NOT (SELECT list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
                    FROM public_standing_rows WHERE subject_key = new.subject_key);
    INSERT INTO public_standings (code, list, grade, next_change_at, name, score, measures, policy_version,
                                  committed, summary_only)
        SELECT code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
        FROM public_standing_rows v
        WHERE v.subject_key = new.subject_key AND NOT EXISTS (SELECT 1 FROM public_standings WHERE code = v.code);
END;

CREATE TRIGGER public_standings_on_update AFTER UPDATE OF state, status, next_change_at ON subjects
WHEN new.id_type = 'uscc'
BEGIN
    DELETE FROM public_standings
    WHERE code = (SELECT code FROM public_standing_rows WHERE subject_key = new.subject_key)
        AND (list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only)
            IS NOT (SELECT list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
                    FROM public_standing_rows WHERE subject_key = new.subject_key);
    INSERT INTO public_standings (code, list, grade, next_change_at, name, score, measures, policy_version,
                                  committed, summary_only)
        SELECT code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
        FROM public_standing_rows v
        WHERE v.subject_key = new.subject_key AND NOT EXISTS (SELECT 1 FROM public_standings WHERE code = v.code);
END;

CREATE TRIGGER public_standings_on_commitment AFTER INSERT ON public_commitments
BEGIN
    DELETE FROM public_standings
    WHERE code = (SELECT code FROM public_standing_rows WHERE subject_key = new.subject_key)
        AND (list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only)
            IS NOT (SELECT list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
                    FROM public_standing_rows WHERE subject_key = new.subject_key);
    INSERT INTO public_standings (code, list, grade, next_change_at, name, score, measures, policy_version,
                                  committed, summary_only)
        SELECT code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
        FROM public_standing_rows v
        WHERE v.subject_key = new.subject_key AND NOT EXISTS (SELECT 1 FROM public_standings WHERE code = v.code);
END;

CREATE TRIGGER public_standings_on_objection AFTER INSERT ON due_process_cases WHEN new.kind = 'objection'
BEGIN
    DELETE FROM public_standings
    WHERE code = (SELECT code FROM public_standing_rows WHERE subject_key = new.subject_key)
        AND (list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only)
            IS NOT (SELECT list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
                    FROM public_standing_rows WHERE subject_key = new.subject_key);
    INSERT INTO public_standings (code, list, grade, next_change_at, name, score, measures, policy_version,
                                  committed, summary_only)
        SELECT code, list, grade, next_change_at, name, score, measures, policy_version, committed, summary_only
        FROM public_standing_rows v
        WHERE v.subject_key = new.subject_key AND NOT EXISTS (SELECT 1 FROM public_standings WHERE code = v.code);
END;
