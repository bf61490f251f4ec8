"""Streamlit helpers shared by app.py and pages/ (the only UI code outside pages)."""
