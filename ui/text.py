"""Small formatting helpers for text shown on the pages."""
from __future__ import annotations

import re

# Characters that are Markdown (or Streamlit's Markdown: :colour[...], :icon:, $LaTeX$, HTML) wherever
# they stand: escaped always. Other punctuation means something only in a few spots (below).
_ALWAYS = "\\`*[]<>~$|&"
_LINE_START = re.compile(r"^( {0,3})([#>+=-]|\d+(?=[.)]))", re.MULTILINE)   # heading, quote, list, rule
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")         # not inside a word (__init__, _x)
_COLON = re.compile(r":")              # :red[..], :material/x:, :smile:, and a URL's "://" (no autolink)
_WWW = re.compile(r"(?i)\b(www)\.")      # "www.x.org" would become a link


def plain(text: object) -> str:
    """Untrusted text (code, file paths, function names, generations, judge reasons, notes, names)
    for any place that renders Markdown: st.markdown / st.write of a string, captions, alerts,
    toasts, expander and metric labels, progress text, st.table cells. Shown literally: no emphasis
    eats `__init__`'s underscores, no image is fetched, no link or HTML is drawn.

    Only what could act as Markdown is escaped (a backslash before ASCII punctuation is always a
    literal in CommonMark), so ordinary words, e-mail addresses, intraword underscores
    (`code_generation`) and "(a) b: c." read the same in the page source as on screen.
    """
    out = "".join("\\" + ch if ch in _ALWAYS else ch for ch in str(text))
    out = _LINE_START.sub(lambda m: m.group(1) + (m.group(2) if m.group(2)[0].isdigit() else "\\" + m.group(2))
                          + ("\\" if m.group(2)[0].isdigit() else ""), out)     # "1." -> "1\." (a digit has no escape)
    out = _UNDERSCORE.sub(r"\\_", out)
    out = _WWW.sub(r"\1\\.", out)
    return _COLON.sub(r"\\:", out)


def text_table(frame):
    """A DataFrame for st.table, whose cells, index and column names are Markdown: text escaped with `plain`."""
    def esc(v):
        return plain(v) if isinstance(v, str) else v
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, str)).any():     # object or string dtype
            out[col] = out[col].map(esc)
    out.index = out.index.map(esc)
    out.columns = out.columns.map(esc)
    return out


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
