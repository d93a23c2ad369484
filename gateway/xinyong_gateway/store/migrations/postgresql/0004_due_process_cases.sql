-- Objections and repairs live in their subject's credit file; this index finds that file by the case's id (the
-- operator's `objections` and `repairs` commands). The projector adds a row in the same transaction as the file that
-- first holds the case; rows are never removed (a case that leaves its file after the policy's horizon is reported
-- as no longer held).
CREATE TABLE due_process_cases (
    kind        TEXT NOT NULL CHECK (kind IN ('objection', 'repair')),
    case_id     TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    PRIMARY KEY (kind, case_id, subject_key)
);
