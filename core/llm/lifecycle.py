"""An item's life cycle, for both ways a job runs: its steps, how often each may be sent again,
and how an item ends when a bound is reached. The one definition of these limits.

Steps of one item (`core.generate.items.generate_one` names each call it makes with `step`):
"generate" → (tests fail) "repair 1" … "repair N" (N = `repair_rounds`) → "judge".

* Online (`core.generate.jobs.runner`): `generate_one` walks the steps once; `core.llm.client.LLMClient`
  retries a call under `transport_retries`, `parse_retries`, `rate_limit_wait_s` and
  `max_retry_after_s` (its defaults are these).
* Batch mode (`core.generate.jobs.batch`): `generate_one` is walked again every round; each step's lines are
  counted, in this item's current try, and `give_up` says when the step is sent no more -- the
  online rules over batch lines instead of HTTP attempts, plus the bounds only batches have
  (`cancelled_resends`, `batch_api_tries`, `batch_overdue_s`, and `step_lines` / `item_lines` as a
  backstop). A step
  already answered is never sent again, even if its prompt came out different on a later walk
  (a sandbox's output that changed between runs): the answer it got is its answer.

When a bound is reached:

* repair rounds: the example is kept with its execution failed and the failure as its reason (its
  `execution` check records `repair_rounds`, the first failure and the last run); the judge is told;
  the export leaves it out unless a reviewer overrides the check. Same in both modes.
* a call that runs out of tries (parse, transport / expired / failed lines, cancelled batches, a
  Batch API that keeps refusing, batches that never end: cancelled when overdue, their lines count
  as expired): the item fails with its reason (`gave_up`), the job goes on with
  the rest, and `shoal generate --retry-failed JOB` (or "Retry failed") runs it again with fresh
  counts.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Mapping

GENERATE, JUDGE = "generate", "judge"


def repair_step(n: int) -> str:
    """The name of repair round `n` (1-based)."""
    return f"repair {n}"


@dataclass(frozen=True)
class Limits:
    """How many times each loop that re-sends work may go round."""
    repair_rounds: int = 1          # generator rounds after a failed execution, each told the failure
    parse_retries: int = 1          # a reply that does not parse: asked again with a correction
    transport_retries: int = 4      # 5xx, timeouts, bad bodies; in batch mode expired / failed / 429 lines
    format_fallbacks: int = 2       # a refused response_format: json_schema → json_object → text
    cancelled_resends: int = 2      # batch mode: lines the provider cancelled (not you) before they ran
    batch_api_tries: int = 20       # batch mode: Batch API requests (upload, create, poll) refused one after another
    batch_overdue_s: float = 26 * 3600.0   # batch mode: a batch not ended this long after it was sent is cancelled
    rate_limit_wait_s: float = 3600.0   # online: 429s for this long, then the call fails
    max_retry_after_s: float = 120.0    # online: a 429 / 503 asking for a longer wait fails the call

    @classmethod
    def of(cls, client_options: Mapping | None) -> Limits:
        """The limits of a job run: these, with a run's client options (`max_retries`,
        `max_parse_retries`, `max_retry_after_s`, `max_rate_limit_wait_s`, the LLMClient's names) over them."""
        o = client_options or {}
        d = cls()
        return cls(parse_retries=int(o.get("max_parse_retries", d.parse_retries)),
                   transport_retries=int(o.get("max_retries", d.transport_retries)),
                   rate_limit_wait_s=float(o.get("max_rate_limit_wait_s", d.rate_limit_wait_s)),
                   max_retry_after_s=float(o.get("max_retry_after_s", d.max_retry_after_s)),
                   batch_overdue_s=float(o.get("batch_overdue_s", d.batch_overdue_s)))

    def step_lines(self) -> int:
        """The most lines one step of an item sends in batch mode (first + every kind of resend)."""
        return 1 + self.transport_retries + self.parse_retries + self.format_fallbacks + self.cancelled_resends

    def item_lines(self) -> int:
        """The most lines one item sends in batch mode in one try: every step at its most."""
        return (2 + self.repair_rounds) * self.step_lines()


LIMITS = Limits()

# how a batch line ended, as `batch_requests.status` records it, and what it counts as
RESEND_REASONS = {
    "retry": "line expired or failed",
    "parse": "reply did not parse (sent with a correction)",
    "format": "response format refused (next format)",
    "cancelled": "batch cancelled before the line ran",
    "not_run": "batch cancelled by you before the line ran",
}


def first_reason(step: str) -> str:
    """Why a step's first line is sent."""
    return "tests failed" if step.startswith("repair") else "first call"


def give_up(statuses: list[str], limits: Limits = LIMITS) -> str | None:
    """After the lines a step has sent in this try (their statuses, oldest first): why it is sent
    no more, or None to send it again. A cancel you asked for (`not_run`) never counts."""
    counted = [s for s in statuses if s != "not_run"]
    if not counted:
        return None
    last, n = counted[-1], Counter(counted)
    if last == "fatal":
        return "an error no retry can fix"
    if last == "retry" and n["retry"] > limits.transport_retries:
        return f"{n['retry']} lines expired or failed"
    if last == "parse" and n["parse"] > limits.parse_retries:
        return f"{n['parse']} replies did not parse"
    if last == "format" and n["format"] > limits.format_fallbacks:
        return f"{n['format']} response formats refused"
    if last == "cancelled" and n["cancelled"] > limits.cancelled_resends:
        return f"{n['cancelled']} batches cancelled before the line ran"
    if len(counted) >= limits.step_lines():
        return f"{len(counted)} lines sent for one call"
    return None


def gave_up(error: str | None, why: str) -> str:
    """An item's reason when a bound is reached: the last error and the bound."""
    return f"{error or 'no answer'} (gave up: {why})"[:500]


# --------------------------------------------------------------------------- the step a call belongs to

_STEP: ContextVar[str] = ContextVar("shoal_item_step", default=GENERATE)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Calls made inside belong to this step of the item (read with `current_step`)."""
    token = _STEP.set(name)
    try:
        yield
    finally:
        _STEP.reset(token)


def current_step() -> str:
    return _STEP.get()
