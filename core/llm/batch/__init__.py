"""Provider Batch APIs (OpenAI's Batch API, Anthropic's Message Batches) behind one interface."""
