-- 025_export_items: dataset versions. Every export is a version; `export_items` records which
-- examples it wrote and a hash of each one's content as written (instruction, input, output, task,
-- language, seed, tests: core.dataset_versions.exported_content), so two exports can be compared
-- (added / removed / edited examples) after their folders are gone. Exports made before this
-- migration have no rows here.
CREATE TABLE IF NOT EXISTS export_items (
    export_id BIGINT NOT NULL,
    generation_id BIGINT NOT NULL,
    content_hash VARCHAR NOT NULL,
    PRIMARY KEY (export_id, generation_id)
);
