"""Small formatting helpers for text shown on the pages."""
from __future__ import annotations

_MARKDOWN_SPECIALS = "\\`*_{}[]()#+-.!|<>~$:"


def plain(text: object) -> str:
    """User data inside Markdown-rendering widgets (progress text, alerts): shown literally."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in str(text))


def short(label: str, limit: int = 40) -> str:
    """`label` cut to `limit` characters, with an ellipsis when cut."""
    return label if len(label) <= limit else label[:limit - 1] + "…"


def verdict_badge(overall) -> str:
    """The judge's overall verdict as a coloured Markdown badge."""
    return {True: ":green-badge[judge: pass]", False: ":red-badge[judge: fail]"}.get(overall, ":gray-badge[not judged]")
