-- 002_indexes: lookups the pages and workers do by key. Frozen.

CREATE INDEX idx_snippets_lang ON snippets(language);
CREATE INDEX idx_llm_calls_hash ON llm_calls(payload_hash);
CREATE INDEX idx_generations_snippet ON generations(snippet_id);
CREATE INDEX idx_judgments_generation ON judgments(generation_id);
CREATE INDEX idx_job_items_job ON job_items(job_id);
CREATE INDEX idx_checks_generation ON checks(generation_id);
