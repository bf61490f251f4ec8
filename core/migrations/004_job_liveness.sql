-- Job liveness in columns of `jobs`: the runner's heartbeat (twice a second) updates these instead of
-- rewriting the JSON `params`, which keeps only what the job was asked to do and its pool snapshots.
-- Values recorded in `params` by earlier versions are copied out, then removed from it.
ALTER TABLE jobs ADD COLUMN calls BIGINT DEFAULT 0;        -- LLM requests sent (cache hits not counted)
ALTER TABLE jobs ADD COLUMN cost_usd DOUBLE DEFAULT 0;     -- estimated from the price table
ALTER TABLE jobs ADD COLUMN stop_reason VARCHAR;           -- why the last run stopped early (budget, user, error)

UPDATE jobs
SET calls = coalesce(TRY_CAST(json_extract(params, '$.usage.calls') AS BIGINT), 0),
    cost_usd = coalesce(TRY_CAST(json_extract(params, '$.usage.cost_usd') AS DOUBLE), 0),
    stop_reason = json_extract_string(params, '$.stop_reason')
WHERE params IS NOT NULL;

UPDATE jobs
SET params = json_merge_patch(params, '{"usage": null, "stop_reason": null}')
WHERE params IS NOT NULL AND (json_exists(params, '$.usage') OR json_exists(params, '$.stop_reason'));
