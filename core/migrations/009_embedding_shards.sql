-- 009_embedding_shards: shards of vectors written by an embedding engine (`shoal embed --engine ray`)
-- and imported by the head. Frozen.
--
-- One row per shard file once its vectors are in `embeddings`: a rerun after a crash imports the
-- shard files in the folder that have no row here (written, not yet imported) and computes only
-- the texts that still have no vector, so an imported shard is never redone.

CREATE TABLE embedding_shards (
    folder VARCHAR NOT NULL,        -- the shard folder (absolute path)
    shard_file VARCHAR NOT NULL,    -- file name inside it, e.g. shard-000003.parquet
    model VARCHAR NOT NULL,         -- model key the vectors were stored under
    engine VARCHAR NOT NULL,        -- ray
    n_rows INTEGER NOT NULL,
    n_imported INTEGER NOT NULL,    -- new vectors (the rest were cached already)
    imported_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (folder, shard_file)
);
