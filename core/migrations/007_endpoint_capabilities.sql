-- 007_endpoint_capabilities: what each endpoint (base URL + model) accepts, and how it was paced. Frozen.
--
-- `endpoint_capabilities` is written by core.llm when a request built from a record is first
-- answered or a refusal taught it something, so that the next job (another process) starts
-- with the right parameters instead of learning them again. Never holds a key.
-- `endpoint_pacing` is the latest snapshot of the endpoint's rate gate (core.pacing), written
-- every few seconds while calls run and when a client closes; `shoal jobs --show` reads it from another process.

CREATE TABLE endpoint_capabilities (
    base_url VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    family VARCHAR,                 -- openai-reasoning | openai-chat | vllm | ollama | llamacpp | anthropic | generic
    token_param VARCHAR,            -- max_tokens | max_completion_tokens
    sampling BOOLEAN,               -- temperature / top_p may be sent
    reasoning_effort BOOLEAN,       -- the parameter exists for this model
    modes JSON,                     -- structured-output modes still tried, best first
    strict BOOLEAN,                 -- json_schema is sent with "strict": true
    max_temperature DOUBLE,
    learned JSON,                   -- the refusals each change was learned from (param, code, message)
    confirmed BOOLEAN,              -- a request built from this record was answered
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (base_url, model)
);

CREATE TABLE endpoint_pacing (
    base_url VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    rpm_limit DOUBLE,
    tpm_limit DOUBLE,
    limits_from VARCHAR,            -- explicit | headers | explicit+headers | none
    window_s DOUBLE,                -- the window the limits refill over (60 s on OpenAI; learned from reset headers)
    tpm_used DOUBLE,                -- share of the token limit the last window used
    concurrency_limit INTEGER,      -- NULL: unbounded
    tokens_per_minute DOUBLE,       -- real usage over the last window, per minute
    requests_per_minute DOUBLE,
    total_wait_s DOUBLE,            -- summed over every request of this process
    rate_limited BIGINT,            -- 429s
    requests_total BIGINT,
    tokens_total BIGINT,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (base_url, model)
);
