-- Sources of kind 'intermediary' (issue #21): an intermediary agency posting about itself.
ALTER TABLE sources DROP CONSTRAINT sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check
    CHECK (kind IN ('marketplace', 'courier', 'regulator', 'intermediary'));
