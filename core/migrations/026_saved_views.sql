-- 026_saved_views: named views of the Review queue (as Argilla / Label Studio have): a reviewer's
-- filters and sort kept under a name, personal or shared with the team. Frozen.
--
-- Names are unique per owner among personal views and among shared views (core.review.views checks
-- it inside the write, with a message that says so). `filter` is QueueFilter.to_dict() without the
-- person's own "only my assigned examples"; `map_id` is the map its clusters were picked on (the
-- latest map when it was saved), so a view whose map was replaced applies without its clusters.
-- A deleted view's row goes; the audit log keeps it (`view.delete`'s before).

CREATE SEQUENCE IF NOT EXISTS seq_saved_views START 1;

CREATE TABLE IF NOT EXISTS saved_views (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_saved_views'),
    name VARCHAR NOT NULL,           -- stripped, 1-80 characters, shown as text
    owner VARCHAR NOT NULL,          -- who saved it (the signed-in identity, or this machine's own user)
    shared BOOLEAN NOT NULL DEFAULT FALSE,
    filter JSON NOT NULL,
    sort VARCHAR NOT NULL,
    seed BIGINT NOT NULL DEFAULT 0,  -- the random sort's seed
    map_id BIGINT,                   -- the map the view's clusters are on (NULL: no clusters)
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP DEFAULT current_timestamp
);
CREATE INDEX IF NOT EXISTS idx_saved_views_owner ON saved_views(owner);
