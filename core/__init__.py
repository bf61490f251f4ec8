"""Shoal core: all logic, no UI (never imports streamlit)."""
import os

__version__ = "0.1.0"

# Shoal sends nothing to the Hugging Face Hub but what a user pushes: the hub client's own telemetry
# (read once, when huggingface_hub is first imported) stays off unless the user turned it on.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
