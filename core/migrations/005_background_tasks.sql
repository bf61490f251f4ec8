-- Long work the app runs off the page (ingest, embed + map, checks): one row per task.
-- A worker thread keeps its row current; a page only reads it, so leaving the page never
-- stops the work. A running task whose heartbeat stops (the process died) is stale.
CREATE SEQUENCE IF NOT EXISTS seq_background_tasks START 1;
CREATE TABLE background_tasks (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_background_tasks'),
    kind VARCHAR NOT NULL,            -- ingest | embed_map | checks
    label VARCHAR,                    -- what the user asked for, e.g. the sources of an ingest
    status VARCHAR NOT NULL DEFAULT 'running',  -- running | done | failed | cancelled | interrupted
    stage VARCHAR,                    -- the current step of a task with several (embedding, map)
    done BIGINT DEFAULT 0,            -- progress: units done of `total` (NULL total = unknown)
    total BIGINT,
    message VARCHAR,                  -- the latest progress note
    error VARCHAR,                    -- why it failed or stopped, for the user
    result JSON,                      -- the task's summary when done (counts, ids, a `summary` text)
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    owner VARCHAR,                    -- host:pid:token of the process running it
    started_at TIMESTAMP DEFAULT current_timestamp,
    heartbeat DOUBLE,                 -- unix time of the worker's latest sign of life
    finished_at TIMESTAMP
);
