"""Showing code: the highlighter name st.code wants for a corpus language, and one generated field."""
from __future__ import annotations

import json

import streamlit as st

from ui.text import plain

# corpus / model language names that the highlighter knows under another name
HIGHLIGHTER = {"c++": "cpp", "c#": "csharp", "shell": "bash", "sh": "bash", "js": "javascript", "ts": "typescript"}


def code_lang(lang: str | None, default: str | None = None) -> str | None:
    """The st.code language for `lang` (`default` when unknown)."""
    if not lang:
        return default
    lang = lang.lower()
    return HIGHLIGHTER.get(lang, lang)


def show_field(name: str, value, lang: str | None) -> None:
    """A generated field under its name: highlighted code when `lang` is given, else plain text."""
    st.markdown(f"**{plain(name)}**")
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    if lang:
        st.code(text, language=lang, wrap_lines=True)
    else:
        st.text(text)   # generated text is shown as text, never as HTML/markdown
