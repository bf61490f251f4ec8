-- 011_judge_evals: judge calibration runs. One `judge_evals` row per run of a judge prompt version and
-- model over the gold set (examples a person accepted or rejected); one `judge_eval_items` row per gold
-- example with the judge's normalized answers, next to the human verdict it is held against.

CREATE SEQUENCE IF NOT EXISTS seq_judge_evals START 1;

CREATE TABLE IF NOT EXISTS judge_evals (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_judge_evals'),
    version INTEGER,                -- the prompt version number evaluated (NULL: each task's current one)
    prompt_version_ids JSON,        -- {task: prompt_versions.id} actually used
    judge_model VARCHAR,
    base_url VARCHAR,
    params JSON,                    -- tasks, sample, seed
    n_gold INTEGER DEFAULT 0,
    metrics JSON,                   -- {overall, per_task, per_rule, n_unreadable}
    status VARCHAR DEFAULT 'running',   -- running | done | failed
    error VARCHAR,
    calls BIGINT DEFAULT 0,         -- requests sent (cache hits not counted)
    cost_usd DOUBLE DEFAULT 0,
    created_at TIMESTAMP DEFAULT current_timestamp,
    finished_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS judge_eval_items (
    eval_id BIGINT NOT NULL,
    generation_id BIGINT NOT NULL,
    task VARCHAR NOT NULL,
    prompt_version_id BIGINT,
    human_verdict VARCHAR NOT NULL, -- accepted | rejected (the gold label)
    judge_overall BOOLEAN,          -- NULL when the judge's reply could not be read
    rules JSON,                     -- [{rule, answer, reason, missing?}] as judgments.rules
    analysis VARCHAR,
    parse_ok BOOLEAN,
    error VARCHAR,
    llm_call_id BIGINT,
    PRIMARY KEY (eval_id, generation_id)
);
