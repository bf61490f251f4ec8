"""Shoal core: all logic, no UI (never imports streamlit)."""
__version__ = "0.1.0"
