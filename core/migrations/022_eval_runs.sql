-- 022_eval_runs: `shoal eval` runs. One `eval_runs` row per evaluation of a model on a benchmark's
-- problems; `eval_problems` lists a run's problems in order; one `eval_samples` row per sample that
-- was answered and executed in the sandbox (written as soon as it is, so a killed run resumes with the
-- samples still missing). `eval_problem_results` is the per-problem outcome every figure comes from.

CREATE SEQUENCE IF NOT EXISTS seq_eval_runs START 1;

CREATE TABLE IF NOT EXISTS eval_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_eval_runs'),
    run_key VARCHAR NOT NULL,       -- hash of what makes two runs the same run (a rerun resumes it)
    benchmark VARCHAR NOT NULL,     -- humaneval | mbpp | heldout
    source VARCHAR,                 -- the MBPP file, the held-out share and seed
    base_url VARCHAR,
    model VARCHAR,
    n_samples INTEGER NOT NULL,     -- samples per problem
    ks JSON,                        -- the k of pass@k asked for
    temperature DOUBLE,
    max_tokens INTEGER,
    params JSON,                    -- limit, timeout, memory, prompt version, seed
    n_problems INTEGER NOT NULL,
    status VARCHAR DEFAULT 'running',   -- running | done | incomplete | failed | cancelled
    error VARCHAR,
    metrics JSON,                   -- pass@k with intervals, statuses (when finished)
    calls BIGINT DEFAULT 0,         -- requests sent (cache hits not counted), over every session of the run
    cost_usd DOUBLE DEFAULT 0,
    seconds DOUBLE DEFAULT 0,       -- wall time summed over the sessions that worked on it
    created_at TIMESTAMP DEFAULT current_timestamp,
    finished_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS eval_problems (
    run_id BIGINT NOT NULL,
    problem_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (run_id, problem_id)
);

CREATE TABLE IF NOT EXISTS eval_samples (
    run_id BIGINT NOT NULL,
    problem_id VARCHAR NOT NULL,
    sample INTEGER NOT NULL,        -- 0 .. n_samples - 1 (part of the LLM cache key)
    completion VARCHAR,             -- the model's reply as sent
    status VARCHAR NOT NULL,        -- the sandbox's status (ok | error | timeout | ...), no_reply or sandbox_stuck
    passed BOOLEAN,                 -- NULL: no reply (retried by the next run of the same command)
    error VARCHAR,                  -- the call's error, or the tail of the program's stderr
    exec_seconds DOUBLE,
    llm_call_id BIGINT,
    cached BOOLEAN,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (run_id, problem_id, sample)
);

CREATE OR REPLACE VIEW eval_problem_results AS
SELECT run_id, problem_id,
       count(*) FILTER (WHERE passed IS NOT NULL) AS n,
       count(*) FILTER (WHERE passed) AS c,
       count(*) FILTER (WHERE passed IS NULL) AS unscored           -- no reply, or the sandbox never returned: retried by the next run
FROM eval_samples
GROUP BY run_id, problem_id;
