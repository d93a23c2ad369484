-- Sources of kind 'intermediary' (issue #21): an intermediary agency posting about itself.
--
-- SQLite cannot alter a CHECK constraint, and rebuilding `sources` would need foreign keys off (source_keys and the
-- inbox refer to it), which cannot be switched inside the migration's transaction. Widening the list of allowed
-- kinds changes nothing on disk, so this follows SQLite's documented procedure for such schema changes ("ALTER
-- TABLE", section "Making Other Kinds Of Table Schema Changes"): the table's definition is edited in sqlite_master,
-- and the store then increments the schema version (store/sqlite.py does it after a migration that says
-- writable_schema), so every connection re-reads the schema. Every existing row satisfies the wider check.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, 'CHECK (kind IN (''marketplace'', ''courier'', ''regulator''))',
                          'CHECK (kind IN (''marketplace'', ''courier'', ''regulator'', ''intermediary''))')
 WHERE type = 'table' AND name = 'sources';
PRAGMA writable_schema = OFF;
