-- 014_review_lookups: the Review page looks up one example's map cluster on every accept -> next
-- (core.review.items.get_item: map_points by snippet). The primary key (map_id, snippet_id) is not
-- used for that lookup, so it scanned every point of the map (3 ms at 100k generations, ten times
-- that at 1M); with this index it is an index scan. Costs about a second more per 333k-point map
-- build. Frozen.
CREATE INDEX IF NOT EXISTS idx_map_points_snippet ON map_points(snippet_id);
