-- Anthropic's Message Batches as a second batch route (core.llm.anthropic_batch). `batches.provider`
-- is now openai | anthropic. An Anthropic batch is created in one request, with no input file a
-- restart could find it by: `submitted_at` records (unix seconds, this machine's clock) when the
-- row's create request was first sent, so a batch created just before a crash, whose id was never
-- recorded, is found again among the provider's batches created since then.
ALTER TABLE batches ADD COLUMN submitted_at DOUBLE;
