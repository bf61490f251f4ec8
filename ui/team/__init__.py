"""The Team page's parts: local accounts."""
