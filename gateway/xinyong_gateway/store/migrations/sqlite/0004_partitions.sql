-- Projection partitions: subjects are split by their key's first hex digit into 16 partitions, each with its own
-- position in the inbox, so that several projectors can share the work (one holder per partition at a time).

-- Which partitions an inbox row concerns (bit mask; rows stored before this migration may concern any).
ALTER TABLE inbox ADD COLUMN partitions INTEGER NOT NULL DEFAULT 65535;

CREATE TABLE projection_partitions (
    partition INTEGER PRIMARY KEY CHECK (partition BETWEEN 0 AND 15),
    position  INTEGER NOT NULL,   -- seq of the last inbox row applied to this partition's subjects
    version   INTEGER NOT NULL    -- commits that wrote the partition: a commit expects the version it read
);
WITH RECURSIVE numbers (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n < 15)
INSERT INTO projection_partitions (partition, position, version)
SELECT n, (SELECT position FROM projector WHERE name = 'main'), 1 FROM numbers
WHERE EXISTS (SELECT 1 FROM projector WHERE name = 'main');
DROP TABLE projector;

ALTER TABLE subjects ADD COLUMN partition INTEGER NOT NULL DEFAULT 0;
UPDATE subjects SET partition = instr('0123456789abcdef', substr(subject_key, 1, 1)) - 1;
CREATE INDEX subjects_due_by_partition ON subjects (partition, next_change_at) WHERE next_change_at IS NOT NULL;
