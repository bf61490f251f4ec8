-- Batch mode follows the item life cycle of core.lifecycle: each line says which step of its item
-- it answers and why it was sent, and is counted in the item's try, so every bound (repair rounds,
-- parse retries, expired / failed lines, cancelled batches) is counted per item and step, and a
-- retry by hand (`--retry-failed`) starts the counts again.
ALTER TABLE batch_requests ADD COLUMN step VARCHAR;       -- generate | repair N | judge (NULL: written before 021)
ALTER TABLE batch_requests ADD COLUMN reason VARCHAR;     -- why the line was sent: first call, tests failed, line expired or failed, ...
ALTER TABLE batch_requests ADD COLUMN item_try INTEGER;   -- job_items.attempts when it was sent (the item's try)
-- batch_requests.status gains `cancelled`: the provider cancelled the batch (not you) before the line ran.
ALTER TABLE batches ADD COLUMN cancel_requested BOOLEAN;  -- Shoal asked the provider to cancel it (a user's cancel)
