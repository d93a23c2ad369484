-- The credit badge's standing of every organisation (its stored status's list and grade, and when time alone may
-- change them), by its USCC, in the order written: `seq` rises with every row written, and SQLite commits one writer
-- at a time, so "the rows after seq N" is everything written since a reader last saw N (web/public/standings.py keeps
-- them in memory that way). A standing that changes is written anew (the old row deleted, the new one takes the next
-- seq: not INSERT OR REPLACE, whose policy a trigger body loses to the outer statement's); AUTOINCREMENT never hands
-- out a seq again. Triggers keep it: every path that writes a subject's status writes its standing in the same
-- transaction.
CREATE TABLE public_standings (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    code           TEXT NOT NULL UNIQUE,   -- the USCC in full (public: a person's id never comes here)
    list           TEXT,
    grade          TEXT,
    next_change_at INTEGER                 -- unix microseconds
);

INSERT INTO public_standings (code, list, grade, next_change_at)
    SELECT display_id, json_extract(status, '$.list'), json_extract(status, '$.grade'), next_change_at
    FROM subjects WHERE id_type = 'uscc' ORDER BY rowid;

CREATE TRIGGER public_standings_on_insert AFTER INSERT ON subjects WHEN new.id_type = 'uscc'
BEGIN
    DELETE FROM public_standings WHERE code = new.display_id;
    INSERT INTO public_standings (code, list, grade, next_change_at)
    VALUES (new.display_id, json_extract(new.status, '$.list'), json_extract(new.status, '$.grade'),
            new.next_change_at);
END;

-- Only when the standing changes: most writes of a file (a record that moves neither list nor grade) write nothing.
CREATE TRIGGER public_standings_on_update AFTER UPDATE OF status, next_change_at ON subjects
WHEN new.id_type = 'uscc' AND (
    new.next_change_at IS NOT old.next_change_at
    OR json_extract(new.status, '$.list') IS NOT json_extract(old.status, '$.list')
    OR json_extract(new.status, '$.grade') IS NOT json_extract(old.status, '$.grade')
)
BEGIN
    DELETE FROM public_standings WHERE code = new.display_id;
    INSERT INTO public_standings (code, list, grade, next_change_at)
    VALUES (new.display_id, json_extract(new.status, '$.list'), json_extract(new.status, '$.grade'),
            new.next_change_at);
END;
