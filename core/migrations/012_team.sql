-- 012_team: a team on one Shoal — members and roles, who reviews which example (with overlap),
-- every reviewer's own response, and the adjudicator's final word on a conflict. Frozen.
--
-- `review_records` (migration 006) keeps holding an example's one current verdict, the one every
-- stage reads through `reviews` / `review_effective`. With one reviewer per example it is written
-- directly, as before. An example that needs several reviewers (assignments with needed >= 2) gets
-- its verdict there only once its responses agree, or when it is adjudicated; until then it has no
-- human verdict. So the effective verdict follows the agreed or adjudicated verdict without a new
-- definition of `review_effective`.

CREATE TABLE team_members (
    identity VARCHAR PRIMARY KEY,    -- the signed-in user's email, else their OIDC subject
    name VARCHAR,
    role VARCHAR NOT NULL,           -- owner | curator | reviewer
    added_by VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    last_seen_at TIMESTAMP,
    CHECK (role IN ('owner', 'curator', 'reviewer'))
);

-- Who reviews which example. `needed` is how many reviewers the example needs (the same on every
-- row of one example), so a queue can tell an overlap example from a single-reviewer one without
-- counting.
CREATE TABLE assignments (
    generation_id BIGINT NOT NULL,
    reviewer VARCHAR NOT NULL,
    needed INTEGER NOT NULL DEFAULT 1,
    assigned_by VARCHAR,
    batch_id VARCHAR,                -- one assignment run
    assigned_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (generation_id, reviewer),
    CHECK (needed >= 1)
);
CREATE INDEX idx_assignments_reviewer ON assignments(reviewer);
CREATE INDEX idx_assignments_generation ON assignments(generation_id);   -- point lookups: how many it needs

-- Every reviewer's own verdict on an example (one live row per generation and reviewer).
CREATE TABLE review_responses (
    generation_id BIGINT NOT NULL,
    reviewer VARCHAR NOT NULL,
    verdict VARCHAR NOT NULL,        -- accepted | rejected | skipped
    note VARCHAR,
    reasons JSON,
    edited_fields JSON,
    version INTEGER NOT NULL DEFAULT 1,
    opened_at TIMESTAMP,             -- when the reviewer opened the example (speed)
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (generation_id, reviewer),
    CHECK (verdict IN ('accepted', 'rejected', 'skipped'))
);
CREATE INDEX idx_review_responses_reviewer ON review_responses(reviewer);
CREATE INDEX idx_review_responses_generation ON review_responses(generation_id);

-- The final word on an example whose reviewers disagreed.
CREATE TABLE adjudications (
    generation_id BIGINT PRIMARY KEY,
    verdict VARCHAR NOT NULL,        -- accepted | rejected
    adjudicator VARCHAR NOT NULL,
    note VARCHAR,
    decided_at TIMESTAMP DEFAULT current_timestamp,
    CHECK (verdict IN ('accepted', 'rejected'))
);

-- Settings the owner chooses on the Team page (overlap, share), one JSON value per key.
CREATE TABLE team_settings (
    key VARCHAR PRIMARY KEY,
    value JSON,
    updated_by VARCHAR,
    updated_at TIMESTAMP DEFAULT current_timestamp
);

-- One row per generation with its team status:
--   pending  — fewer decisive (accept/reject) responses than it needs, and no verdict yet;
--   decided  — a one-reviewer example with a human verdict (as before teams);
--   agreed   — every response it needed is in and they agree;
--   conflict — the responses it needed are in and they disagree (waits for adjudication);
--   resolved — an adjudicator decided it.
CREATE VIEW review_team_status AS
WITH need AS (
    SELECT generation_id, max(needed) AS needed, count(*) AS assigned FROM assignments GROUP BY 1
), resp AS (
    SELECT generation_id,
           count(*) FILTER (WHERE verdict IN ('accepted', 'rejected')) AS responses,
           count(*) FILTER (WHERE verdict = 'accepted') AS accepts,
           count(*) FILTER (WHERE verdict = 'rejected') AS rejects
    FROM review_responses GROUP BY 1
)
SELECT g.id AS generation_id, g.task,
       coalesce(n.needed, 1) AS needed, coalesce(n.assigned, 0) AS assigned,
       coalesce(x.responses, 0) AS responses, coalesce(x.accepts, 0) AS accepts,
       coalesce(x.rejects, 0) AS rejects,
       CASE WHEN a.generation_id IS NOT NULL THEN 'resolved'
            WHEN coalesce(n.needed, 1) <= 1 THEN
                 CASE WHEN r.verdict IN ('accepted', 'rejected') THEN 'decided' ELSE 'pending' END
            WHEN coalesce(x.responses, 0) < n.needed THEN 'pending'
            WHEN x.accepts > 0 AND x.rejects > 0 THEN 'conflict'
            ELSE 'agreed' END AS status,
       a.verdict AS adjudicated_verdict, a.adjudicator,
       r.verdict AS final_verdict
FROM generations g
LEFT JOIN need n ON n.generation_id = g.id
LEFT JOIN resp x ON x.generation_id = g.id
LEFT JOIN adjudications a ON a.generation_id = g.id
LEFT JOIN reviews r ON r.generation_id = g.id;
