-- Credit files became a function of the set of stored facts (arrival order no longer matters; record ids are
-- derived from the facts). Files written before this migration hold window state in the earlier form, so they are
-- rebuilt: their state is emptied, the archive too, and every partition starts again from the beginning of the
-- inbox. A projector that meets an emptied file replays the whole inbox in one pass and one transaction (as
-- `policy apply` does), so the change feed gets an entry only where a subject's decision really changes.
UPDATE subjects SET state = '', next_change_at = NULL;
DELETE FROM archived_records;
UPDATE projection_partitions SET position = 0, version = version + 1 WHERE EXISTS (SELECT 1 FROM subjects);
