"""Generation: items (one LLM call chain per snippet and task) and the jobs that run them."""
