"""Training from a Shoal export: the checks a training file passes before any upload or run."""
