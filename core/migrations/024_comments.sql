-- 024_comments: comments on an example (as Argilla / Label Studio have), kept with the example and
-- listed oldest first with author and time. A deleted comment keeps its row (deleted_at set) so the
-- audit log's `comment.add` / `comment.delete` rows always name a comment that exists. Frozen.

CREATE SEQUENCE IF NOT EXISTS seq_comments START 1;

CREATE TABLE IF NOT EXISTS comments (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_comments'),
    generation_id BIGINT NOT NULL,   -- the example (generations.id)
    author VARCHAR NOT NULL,         -- the signed-in identity, or this machine's own user
    body VARCHAR NOT NULL,           -- stored as typed (stripped), shown as text
    created_at TIMESTAMP DEFAULT current_timestamp,
    deleted_at TIMESTAMP             -- NULL while the comment is live
);
CREATE INDEX IF NOT EXISTS idx_comments_generation ON comments(generation_id);
