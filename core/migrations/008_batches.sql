-- Provider batches of jobs run in batch mode (OpenAI's Batch API): what was submitted, where it is,
-- and which line answers which job item. A batch row is written before anything is sent; its
-- input file id and provider batch id are recorded as soon as the provider returns them, so a
-- restarted job polls the batch it already paid for instead of submitting it again.
CREATE SEQUENCE IF NOT EXISTS seq_batches START 1;

CREATE TABLE batches (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_batches'),
    job_id BIGINT NOT NULL,
    round INTEGER NOT NULL,            -- the job's round: 1 = generator calls, 2 = judge calls, then retries
    role VARCHAR NOT NULL,             -- generator | judge
    provider VARCHAR NOT NULL,         -- openai
    base_url VARCHAR,
    model VARCHAR,
    n_lines INTEGER NOT NULL,
    input_file_id VARCHAR,             -- set once the JSONL is uploaded
    provider_batch_id VARCHAR,         -- set once the batch is created: never created again after this
    status VARCHAR NOT NULL DEFAULT 'preparing',
        -- preparing | uploaded | the provider's status (validating, in_progress, finalizing, completed,
        -- expired, failed, cancelling, cancelled) | collected (its lines are in llm_calls)
    request_total INTEGER,
    request_completed INTEGER,
    request_failed INTEGER,
    output_file_id VARCHAR,
    error_file_id VARCHAR,
    error VARCHAR,                     -- the provider's batch-level errors (validation), if any
    cost_usd DOUBLE DEFAULT 0,         -- at the batch price, summed when collected
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    collected_at TIMESTAMP
);

CREATE TABLE batch_requests (
    batch_id BIGINT NOT NULL,
    custom_id VARCHAR NOT NULL,        -- unique within its batch: "<job item id>-<role>-<attempt>"
    job_item_id BIGINT NOT NULL,
    role VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,     -- the llm_calls cache key of the logical call
    mode VARCHAR NOT NULL,             -- structured-output mode the line asks in
    body JSON,                         -- the line's request body; cleared once it is in llm_calls
    status VARCHAR NOT NULL DEFAULT 'pending',
        -- pending | ok | parse (reply did not validate) | format (response_format refused) |
        -- retry (429, 5xx, expired: sent again) | fatal (any other error) | not_run (cancelled first)
    error VARCHAR,
    llm_call_id BIGINT,
    PRIMARY KEY (batch_id, custom_id)
);

CREATE TABLE batch_item_rounds (          -- the round whose pool snapshot an item's prompts use
    job_item_id BIGINT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    round INTEGER NOT NULL
);

CREATE INDEX idx_batches_job ON batches(job_id);
CREATE INDEX idx_batch_requests_item ON batch_requests(job_item_id);
