-- 001_initial: every table of the first schema. Frozen: never edit a shipped migration, add a new file.

CREATE SEQUENCE IF NOT EXISTS seq_ingests START 1;
CREATE SEQUENCE IF NOT EXISTS seq_ingest_errors START 1;
CREATE SEQUENCE IF NOT EXISTS seq_maps START 1;
CREATE SEQUENCE IF NOT EXISTS seq_selections START 1;
CREATE SEQUENCE IF NOT EXISTS seq_prompt_versions START 1;
CREATE SEQUENCE IF NOT EXISTS seq_jobs START 1;
CREATE SEQUENCE IF NOT EXISTS seq_job_items START 1;
CREATE SEQUENCE IF NOT EXISTS seq_llm_calls START 1;
CREATE SEQUENCE IF NOT EXISTS seq_generations START 1;
CREATE SEQUENCE IF NOT EXISTS seq_judgments START 1;
CREATE SEQUENCE IF NOT EXISTS seq_audit_log START 1;
CREATE SEQUENCE IF NOT EXISTS seq_checks START 1;
CREATE SEQUENCE IF NOT EXISTS seq_exports START 1;
CREATE SEQUENCE IF NOT EXISTS seq_check_runs START 1;

CREATE TABLE ingests (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_ingests'),
    started_at TIMESTAMP DEFAULT current_timestamp,
    finished_at TIMESTAMP,
    sources JSON,               -- list of source strings as given
    format VARCHAR,
    params JSON,                -- filters, seeds, ...
    ingested INTEGER DEFAULT 0,
    duplicates INTEGER DEFAULT 0,
    filtered INTEGER DEFAULT 0,
    errors INTEGER DEFAULT 0,
    status VARCHAR DEFAULT 'running'   -- running | done | failed | cancelled
);

CREATE TABLE snippets (
    id VARCHAR PRIMARY KEY,     -- sha256 (hex, 32 chars) of the normalized code
    kind VARCHAR NOT NULL,      -- function | seed
    source VARCHAR NOT NULL,    -- the source as the user gave it (file, folder, 'stdlib')
    source_kind VARCHAR NOT NULL, -- codesearchnet | wholefile | dir | stdlib
    repo VARCHAR,
    path VARCHAR,
    func_name VARCHAR,
    language VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    docstring VARCHAR,
    url VARCHAR,
    start_line INTEGER,         -- 1-based, inclusive
    end_line INTEGER,
    n_chars INTEGER NOT NULL,
    seed_rng BIGINT,            -- OSS-Instruct seeds: the RNG seed that drew the lines
    ingest_id BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE ingest_errors (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_ingest_errors'),
    ingest_id BIGINT,
    source VARCHAR,
    location VARCHAR,           -- file:line, file#record, path inside a folder
    kind VARCHAR NOT NULL,      -- error | filtered
    reason VARCHAR NOT NULL,    -- short machine-countable reason, e.g. 'too_short'
    detail VARCHAR,             -- human text
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE embeddings (
    content_hash VARCHAR NOT NULL,  -- hash of the exact text that was embedded
    model VARCHAR NOT NULL,
    dim INTEGER NOT NULL,
    vector FLOAT[] NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (content_hash, model)
);

CREATE TABLE maps (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_maps'),
    name VARCHAR,
    model VARCHAR NOT NULL,
    params JSON,
    n_points INTEGER,
    n_clusters INTEGER,
    status VARCHAR DEFAULT 'done',
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE map_points (
    map_id BIGINT NOT NULL,
    snippet_id VARCHAR NOT NULL,
    x FLOAT NOT NULL,
    y FLOAT NOT NULL,
    cluster INTEGER NOT NULL,
    PRIMARY KEY (map_id, snippet_id)
);

CREATE TABLE clusters (
    map_id BIGINT NOT NULL,
    cluster INTEGER NOT NULL,
    label VARCHAR,
    terms JSON,
    size INTEGER,
    PRIMARY KEY (map_id, cluster)
);

CREATE TABLE selections (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_selections'),
    name VARCHAR NOT NULL UNIQUE,
    method VARCHAR NOT NULL,     -- kcenter | kcenter_fast | random | stratified | manual
    map_id BIGINT,
    model VARCHAR,
    params JSON,
    budget INTEGER,
    n_items INTEGER,
    n_candidates INTEGER,
    coverage_mean DOUBLE,
    coverage_max DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE selection_items (
    selection_id BIGINT NOT NULL,
    snippet_id VARCHAR NOT NULL,
    rank INTEGER NOT NULL,       -- order of picking
    PRIMARY KEY (selection_id, snippet_id)
);

CREATE TABLE prompt_versions (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_prompt_versions'),
    task VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    content JSON NOT NULL,       -- definition, requirements, schema, templates, rules
    content_hash VARCHAR NOT NULL,
    note VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (task, version)
);

CREATE TABLE jobs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_jobs'),
    name VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'pending', -- pending|running|paused|cancelled|done
    params JSON,                 -- tasks/mix, target languages, profiles (no keys), caps
    selection_id BIGINT,
    n_items INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    heartbeat_at TIMESTAMP
);

CREATE TABLE job_items (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_job_items'),
    job_id BIGINT NOT NULL,
    item_key VARCHAR NOT NULL,   -- snippet x task x target x prompt version x models
    snippet_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    target_language VARCHAR,
    prompt_version_id BIGINT,
    generator_model VARCHAR,
    judge_model VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'pending', -- pending|running|succeeded|failed|skipped
    error VARCHAR,
    attempts INTEGER DEFAULT 0,
    generation_id BIGINT,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (job_id, item_key)
);

CREATE TABLE llm_calls (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_llm_calls'),
    payload_hash VARCHAR NOT NULL,
    role VARCHAR,                -- generator | judge | test
    base_url VARCHAR,
    model VARCHAR,
    request JSON,                -- messages and parameters (never the key)
    response_text VARCHAR,
    response_format VARCHAR,     -- json_schema | json_object | text
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms DOUBLE,
    cost_usd DOUBLE,
    error VARCHAR,
    status_code INTEGER,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE generations (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_generations'),
    job_id BIGINT,
    job_item_id BIGINT,
    snippet_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    target_language VARCHAR,
    prompt_version_id BIGINT,
    generator_model VARCHAR,
    fields JSON,                 -- parsed output (task_name, instruction, information, solution / problem ...)
    raw_text VARCHAR,
    parse_ok BOOLEAN,
    prefilter_ok BOOLEAN,
    prefilter_reasons JSON,
    llm_call_id BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE judgments (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_judgments'),
    generation_id BIGINT NOT NULL,
    judge_model VARCHAR,
    prompt_version_id BIGINT,
    rules JSON,                  -- [{rule, answer: yes|no, reason}]
    overall BOOLEAN,
    analysis VARCHAR,
    raw_text VARCHAR,
    parse_ok BOOLEAN,
    llm_call_id BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE reviews (
    generation_id BIGINT PRIMARY KEY,
    verdict VARCHAR NOT NULL,    -- accepted | rejected | skipped
    note VARCHAR,
    reasons JSON,
    edited_fields JSON,          -- the reviewer's edited copy of generations.fields
    reviewer VARCHAR,
    version INTEGER NOT NULL DEFAULT 1,
    batch_id VARCHAR,            -- bulk action this verdict came from (undo as one)
    updated_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_audit_log'),
    created_at TIMESTAMP DEFAULT current_timestamp,
    actor VARCHAR,
    action VARCHAR NOT NULL,
    entity VARCHAR,
    entity_id VARCHAR,
    before JSON,
    after JSON,
    batch_id VARCHAR
);

CREATE TABLE check_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_check_runs'),
    kind VARCHAR NOT NULL,       -- decontamination | near_duplicate | execution
    params JSON,
    summary JSON,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE checks (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_checks'),
    run_id BIGINT,
    generation_id BIGINT NOT NULL,
    kind VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL,
    detail JSON,
    overridden BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE exports (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_exports'),
    format VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    n_rows INTEGER,
    params JSON,
    card VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE ui_state (
    key VARCHAR PRIMARY KEY,     -- e.g. 'review.position'
    value JSON,
    updated_at TIMESTAMP DEFAULT current_timestamp
);
