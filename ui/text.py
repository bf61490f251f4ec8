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


def real_model_help() -> str:
    """How to point Shoal at a real model: the README's own lines (its "To use a real model" block)."""
    from pathlib import Path
    readme = Path(__file__).resolve().parent.parent / "README.md"
    block = ""
    try:
        text = readme.read_text(encoding="utf-8")
        start = text.index("To use a real model:")
        fence = text.index("```", start)
        block = text[fence:text.index("```", fence + 3) + 3]
    except (OSError, ValueError):
        pass
    return ("**Use a real model**: set the server URL and model name per role above, or before `make run` "
            "(README, section *Quick start* → “To use a real model”; docs/local-model.md, *Using a real model "
            "instead*):\n\n" + block)


# What the core says for the command line, said as the page says it (pages show no CLI flags).
_PAGE_WORDING = [
    (r"choose another --out or pass --overwrite", "choose another folder, or tick “Overwrite an existing folder”"),
    (r"\s*\(--include-judged\)", " (tick “Include judge-passed unreviewed”)"),
    (r"Pass a local file instead: --benchmarks (\S+)=PATH",
     r"Give a local file instead: type \1=/path/to/file in “Benchmark files”"),
    (r"\(sidebar, or --reviewer on the command line\)", "(in the sidebar)"),
    (r"Run `shoal check`", "Run the checks"),
]


def page_text(message: object) -> str:
    """An error message for a page: command-line wording replaced by the page's."""
    import re
    text = str(message)
    for pattern, replacement in _PAGE_WORDING:
        text = re.sub(pattern, replacement, text)
    return text
