-- A batch the provider keeps "in progress" past its completion window (OpenAI and Anthropic promise
-- 24 h) is cancelled by Shoal (core.lifecycle's batch_overdue_s): its lines that never ran count as
-- expired ones (resent under transport_retries, then their items fail), so a stuck batch ends.
ALTER TABLE batches ADD COLUMN overdue BOOLEAN;   -- Shoal cancelled it for being overdue
