-- 003_review_views: the views every stage uses for "what counts". Frozen copy of the SQL that
-- core.review.create_review_views ran; the effective verdict here is the one definition
-- (core.review.effective_verdict_sql spells the same CASE for queries that cannot use the view,
-- and a test checks the two agree).

-- One row per generation: its newest judgment, plus the rules it answered "no".
CREATE OR REPLACE VIEW latest_judgments AS
SELECT j.*,
       CASE WHEN json_type(j.rules) = 'ARRAY' THEN
            list_transform(list_filter(CAST(j.rules AS JSON[]),
                                       lambda e: lower(e->>'answer') = 'no'), lambda e: (e->>'rule'))
       END AS failed_rules
FROM judgments j
QUALIFY row_number() OVER (PARTITION BY j.generation_id ORDER BY j.id DESC) = 1;

-- The verdict that counts: the human's accept/reject, else the judge's overall (a skip is not a verdict).
CREATE OR REPLACE VIEW review_effective AS
SELECT g.id AS generation_id, g.task, g.snippet_id,
       j.overall AS judge_overall,
       r.verdict AS human_verdict, r.reviewer, r.version AS review_version,
       CASE WHEN r.verdict IN ('accepted', 'rejected') THEN r.verdict WHEN j.overall THEN 'accepted' WHEN NOT j.overall THEN 'rejected' END AS effective_verdict,
       CASE WHEN r.verdict IN ('accepted', 'rejected') THEN 'human'
            WHEN j.overall IS NOT NULL THEN 'judge' END AS decided_by,
       COALESCE(r.edited_fields, g.fields) AS effective_fields,
       r.edited_fields IS NOT NULL AS edited
FROM generations g
LEFT JOIN latest_judgments j ON j.generation_id = g.id
LEFT JOIN reviews r ON r.generation_id = g.id;

CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit_log(entity_id);
