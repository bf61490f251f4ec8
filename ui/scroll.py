"""Bring a part of the page into view after an action whose result shows above the button clicked."""
from __future__ import annotations

import json

import streamlit as st


def anchor(name: str) -> None:
    """An invisible mark `scroll_to(name)` can bring into view."""
    st.html(f'<div id="shoal-anchor-{name}"></div>', width="content")


def scroll_to(name: str, nonce: str = "") -> None:
    """Scroll the page so the anchor `name` is at the top of the window (a fixed script of ours;
    the only data in it is the anchor name, JSON-encoded; `nonce` makes each call a new element)."""
    target = json.dumps(f"shoal-anchor-{name}").replace("</", "<\\/")
    st.html(f"""<script>/* {nonce} */
      (() => {{
        let tries = 0;
        const tick = () => {{
          const el = window.parent.document.getElementById({target}) || document.getElementById({target});
          if (!el) {{ if (tries++ < 100) setTimeout(tick, 50); return; }}
          el.scrollIntoView({{block: "start"}});
        }};
        tick();
      }})();</script>""", unsafe_allow_javascript=True, width="content")
