"""The Review page's parts: queue, one example, decisions, edits, comments, agreement."""
