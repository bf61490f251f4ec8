-- 027_guidelines: reviewer guidelines per task (as Argilla / Label Studio show beside the record).
-- `task` is a task name (core.tasks.TASKS) or '*' for the general guidelines of every task. Every
-- save is a new version (1, 2, ... per task) with its author and time; the latest version is the one
-- the Review page shows, an empty body clears them. Rows are never changed or deleted. Frozen.

CREATE SEQUENCE IF NOT EXISTS seq_guidelines START 1;

CREATE TABLE IF NOT EXISTS guidelines (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_guidelines'),
    task VARCHAR NOT NULL,           -- a task name, or '*' for all tasks
    version INTEGER NOT NULL,        -- 1, 2, ... per task
    body VARCHAR NOT NULL,           -- as written (stripped); '' clears the guidelines; shown as text
    author VARCHAR NOT NULL,         -- the signed-in identity, or this machine's own user
    created_at TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (task, version)
);
