"""The Evaluate view."""
