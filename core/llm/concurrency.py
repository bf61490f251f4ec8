"""How many requests a job keeps in flight: the default, and the embedded model's cap.

The one place these rules live: the Generate page's field, `shoal generate --concurrency`, the job
runner, evaluations, judge calibrations, the LLM client and the rate gate all start from here. It
sits in core/llm rather than core/generate because the client and the gate, below the generation
stage, start from the same default.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["DEFAULT_CONCURRENCY", "LOCAL_MODEL_CONCURRENCY", "asked_concurrency", "job_concurrency",
           "uses_local_model"]

# Items a generation job keeps in flight (and requests a judge calibration or an evaluation sends at
# once) unless asked otherwise.
DEFAULT_CONCURRENCY = 8
# The embedded model's server answers one request at a time (others queue behind a lock): more
# would only queue there and time out -- 8 queued replies of ~300 tokens at ~10 tok/s take minutes.
LOCAL_MODEL_CONCURRENCY = 1


def uses_local_model(profiles: Mapping[str, Any]) -> bool:
    """Whether any role runs on the embedded model (a Profile or a stored profile dict)."""
    return any((p.get("source") if isinstance(p, dict) else getattr(p, "source", "")) == "local"
               for p in profiles.values())


def asked_concurrency(asked: int | None = None) -> int:
    """What was asked, else DEFAULT_CONCURRENCY (at least 1)."""
    return max(1, int(asked or DEFAULT_CONCURRENCY))


def job_concurrency(profiles: Mapping[str, Any], asked: int | None = None) -> int:
    """The concurrency a job on these profiles runs at: what was asked (else DEFAULT_CONCURRENCY),
    capped at LOCAL_MODEL_CONCURRENCY for the embedded model. The one place the cap is applied:
    page, CLI, runner and evaluations all ask here."""
    n = asked_concurrency(asked)
    return min(n, LOCAL_MODEL_CONCURRENCY) if uses_local_model(profiles) else n
