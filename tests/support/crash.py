"""A crash at a chosen point of the code under test, standing for a kill -9 there."""
from __future__ import annotations

from typing import Any, Callable

import pytest


class Crash(BaseException):
    """BaseException: nothing in the code under test catches it, as nothing catches a kill -9."""


def run_until_crash(monkeypatch, owner: Any, name: str, run: Callable[[], Any]) -> None:
    """Run `run()` with `owner.name` raising Crash when called, then put the real one back."""
    real = getattr(owner, name)

    def crash(*_args, **_kwargs):
        raise Crash()
    monkeypatch.setattr(owner, name, crash)
    with pytest.raises(Crash):
        run()
    monkeypatch.setattr(owner, name, real)
