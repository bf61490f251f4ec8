"""Keyboard focus for keyboard-only work (the Review page's reject note and edit fields)."""
from __future__ import annotations

import json

import streamlit as st


def focus(label: str, nonce: str) -> None:
    """Put the keyboard focus in the input with this aria-label.
    A fixed script of ours; the only data in it is the label, JSON-encoded."""
    js_label = json.dumps(label).replace("</", "<\\/")   # never let a field name close the script
    st.html(f"""<script>/* {nonce} */
      (() => {{
        const sel = '[aria-label="' + CSS.escape({js_label}) + '"]';
        let tries = 0;   // widgets are lazy-loaded: retry until the input exists
        const tick = () => {{
          const el = document.querySelector(sel);
          if (!el || (el.tagName === 'TEXTAREA' && !el.value && tries < 20)) {{  // not there or not filled yet
            if (tries++ < 100) setTimeout(tick, 50);
            return;
          }}
          el.focus();
          if (!el.select) return;
          el.select();
          // a late re-render can collapse the selection: select again while the user has not typed
          const text = el.value;
          [100, 300, 700].forEach(ms => setTimeout(() => {{
            if (document.activeElement === el && el.value === text && el.selectionStart === el.selectionEnd)
              el.select();
          }}, ms));
        }};
        tick();
      }})();</script>""", unsafe_allow_javascript=True, width="content")
