"""Form state that survives a reload and a trip to another page, so an action always applies to
what is on screen.

A page lists its form's widget keys with their defaults (`Form`). Before the widgets are drawn,
`form.restore()` puts a value into Session State for every key that has none: from the URL's
query parameters (a reload keeps the URL), else from the user's last form in DuckDB
(`ui_state`, per reviewer name: a trip to another page drops both the widgets' state and the
query parameters), else the default. The widgets are then created with `key=` only (no
value/index of their own), and after them `form.save()` writes what is on screen back to both
places. Restored values that are no longer valid (a deleted selection) are dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import streamlit as st

from core.store import Store


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _decode(raw: str, default: Any) -> Any:
    """A query parameter's text as the type of the widget's default; ValueError when it does not fit."""
    if isinstance(default, bool):
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw == "true"
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (list, tuple)):
        value = json.loads(raw)
        if not isinstance(value, list):
            raise ValueError(raw)
        return value
    return raw


@dataclass
class Form:
    """The persisted widgets of one page: key -> default, and optional validity checks per key."""
    store: Store
    name: str                                   # e.g. "generate": the ui_state key's page part
    user: str
    defaults: dict[str, Any]
    valid: dict[str, Callable[[Any], bool]] = field(default_factory=dict)

    @property
    def db_key(self) -> str:
        return f"form.{self.name}.{self.user}"

    def allow(self, key: str, options: Sequence[Any]) -> None:
        """Only values among `options` may be restored for `key` (for radios, selects, multiselects)."""
        opts = list(options)
        self.valid[key] = (lambda v: all(x in opts for x in v)) if isinstance(self.defaults[key], list) \
            else (lambda v: v in opts)

    def _ok(self, key: str, value: Any) -> bool:
        check = self.valid.get(key)
        try:
            return check is None or bool(check(value))
        except Exception:
            return False

    def restore(self) -> None:
        """Fill Session State for every key that has no value yet (query params, then DuckDB, then default)."""
        saved = None
        for key, default in self.defaults.items():
            if key in st.session_state and self._ok(key, st.session_state[key]):
                continue
            value, found = default, False
            if key in st.query_params:
                try:
                    value, found = _decode(st.query_params[key], default), True
                except (ValueError, TypeError):
                    found = False
            if not found:
                if saved is None:
                    saved = self.store.get_ui_state(self.db_key, {}) or {}
                if key in saved:
                    value = saved[key]
            st.session_state[key] = value if self._ok(key, value) else default

    def values(self) -> dict[str, Any]:
        return {k: st.session_state.get(k, d) for k, d in self.defaults.items()}

    def save(self) -> None:
        """Write the values on screen to the URL and to DuckDB (only when they changed)."""
        now = self.values()
        for key, value in now.items():
            text = _encode(value)
            if st.query_params.get(key) != text:
                st.query_params[key] = text
        marker = f"_persist.{self.db_key}"
        if st.session_state.get(marker) != now:
            if self.store.get_ui_state(self.db_key) != now:
                self.store.set_ui_state(self.db_key, now)
            st.session_state[marker] = now


# --------------------------------------------------------------------------- state that outlives another page

def _persist_kwargs() -> dict[str, Any]:
    import inspect
    return {"persist_state": "session"} if "persist_state" in inspect.signature(st.selectbox).parameters else {}


# Passed to every widget whose value `keep` looks after: Streamlit's own way (1.6x) to keep a keyed
# widget's value while it is not drawn (another page, a hidden widget, a fragment run between).
PERSIST: dict[str, Any] = _persist_kwargs()
_KEPT: set[str] = set()          # every widget key some page keeps (process-wide; keys are the same for everyone)


def keep(defaults: dict[str, Any]) -> None:
    """Widget values that survive a run on another page. Call every run, before the widgets are drawn;
    draw the widgets with `key=` only (no value of their own) and `**PERSIST`.

    Streamlit drops a widget's Session State entry at the end of any run that does not draw the
    widget (every run of another page, or of this page while the widget is hidden), so code that
    reads `st.session_state.<key>` on the way back failed (the Review page's "no attribute
    rv_clusters") and the filter was lost. With `persist_state="session"` (PERSIST) Streamlit keeps
    the value itself; a key seen for the first time gets its default here (a callable default is
    called). On a Streamlit without it, each kept value is assigned to itself on every run (here,
    and by the frame through `carry_over` on every page): a value the script assigns is never dropped.
    """
    ss = st.session_state
    for key, default in defaults.items():
        _KEPT.add(key)
        if key not in ss:
            ss[key] = default() if callable(default) else default
        elif not PERSIST:
            ss[key] = ss[key]


def carry_over() -> None:
    """The frame, on every run before the page (a Streamlit without `persist_state` only): every kept
    value is assigned to itself, so a run of a page that does not draw the widget keeps it."""
    if PERSIST:
        return
    ss = st.session_state
    for key in tuple(_KEPT):
        if key in ss:
            ss[key] = ss[key]


def forget(*keys: str) -> None:
    """Drop kept values, so the next `keep` starts these keys from their defaults."""
    for key in keys:
        if key in st.session_state:
            del st.session_state[key]


def within(key: str, options: Sequence[Any], default: Any = None) -> None:
    """A kept value limited to what the widget offers now (an option may be gone since it was kept):
    for a multiselect the choices left, else `default`. Written only when it changes."""
    ss = st.session_state
    if key not in ss:
        return
    opts, value = list(options), ss[key]
    fixed = [v for v in value if v in opts] if isinstance(value, list) else (value if value in opts else default)
    if fixed != value:
        ss[key] = fixed
