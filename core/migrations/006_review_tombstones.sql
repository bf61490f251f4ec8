-- 006_review_tombstones: undo keeps the review row as a tombstone instead of deleting it, so a
-- generation's review versions only grow without reading the audit log. Frozen.
--
-- `review_records` holds every review row, undone ones included: a tombstone has `undone_at`
-- set and its verdict, note, reasons, edits, reviewer and batch cleared; its `version` is the
-- highest the review reached, so the next decision takes version + 1. `reviews` becomes a view of
-- the live rows with the columns it always had: every reader sees an undone review as no review
-- (no human verdict), exactly as when undo deleted the row. Writes go to `review_records`.

CREATE TABLE review_records (
    generation_id BIGINT PRIMARY KEY,
    verdict VARCHAR,             -- accepted | rejected | skipped; NULL on a tombstone
    note VARCHAR,
    reasons JSON,
    edited_fields JSON,          -- the reviewer's edited copy of generations.fields
    reviewer VARCHAR,
    version INTEGER NOT NULL DEFAULT 1,
    batch_id VARCHAR,            -- bulk action this verdict came from (undo as one)
    updated_at TIMESTAMP DEFAULT current_timestamp,
    undone_at TIMESTAMP,         -- set: this review was undone (a tombstone)
    CHECK (verdict IS NOT NULL OR undone_at IS NOT NULL)
);

INSERT INTO review_records(generation_id, verdict, note, reasons, edited_fields, reviewer, version,
                           batch_id, updated_at)
SELECT generation_id, verdict, note, reasons, edited_fields, reviewer, version, batch_id, updated_at
FROM reviews;

-- Reviews the old undo deleted: a tombstone at the highest version the audit log has seen.
INSERT INTO review_records(generation_id, verdict, version, updated_at, undone_at)
SELECT gid, NULL, max(v), max(created_at), max(created_at)
FROM (SELECT TRY_CAST(entity_id AS BIGINT) AS gid, created_at,
             greatest(coalesce(TRY_CAST(after->>'version' AS INTEGER), 0),
                      coalesce(TRY_CAST(before->>'version' AS INTEGER), 0)) AS v
      FROM audit_log WHERE entity = 'review')
WHERE gid IS NOT NULL AND gid NOT IN (SELECT generation_id FROM reviews)
GROUP BY gid
HAVING max(v) > 0;

DROP TABLE reviews;

CREATE VIEW reviews AS
SELECT generation_id, verdict, note, reasons, edited_fields, reviewer, version, batch_id, updated_at
FROM review_records
WHERE undone_at IS NULL;
