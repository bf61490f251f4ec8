"""What a refused request means, read from its status and error **body** (OpenAI's message, type,
param and code), so that each kind gets the one right reaction:

  rate_limited      429 rate_limit_exceeded: the endpoint's gate pauses, the call waits and goes again
  unsupported       400 unsupported_parameter / unsupported_value / invalid_json_schema naming a
                    parameter the capabilities record decides: adapt once, send again
  format_rejected   the server does not do this response_format: next structured-output mode
  fatal             context length, auth, unknown model, quota, a request larger than the limit,
                    any other 4xx: the call fails at once with the message and a hint
  transient         5xx, timeouts, dropped connections, 408/409/425: back off and retry (bounded)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.llm.transport import FORMAT_REJECTED_STATUS, RETRYABLE_STATUS, Attempt

__all__ = ["Failure", "classify"]

ADAPTABLE_PARAMS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "reasoning_effort")
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|response format|structured output|"
                           r"guided_json|grammar", re.I)
_CONTEXT_WORDS = re.compile(r"maximum context length|context length|context window|too many tokens|"
                            r"prompt is too long", re.I)


@dataclass(frozen=True)
class Failure:
    kind: str            # rate_limited | unsupported | format_rejected | fatal | transient
    reason: str = ""     # for fatal ones: context_length | auth | model_not_found | quota | too_large | bad_request
    hint: str = ""


def _hint(reason: str, role: str, model: str) -> str:
    var = f"SHOAL_{role.upper()}" if role in ("generator", "judge") else "SHOAL_<ROLE>"
    return {
        "context_length": f"the prompt plus {var}_MAX_TOKENS is over {model}'s context window: use shorter "
                          f"snippets, fewer few-shot examples, or a lower {var}_MAX_TOKENS",
        "auth": f"the server refused the API key: check the variable named by {var}_API_KEY_ENV "
                "(or .streamlit/secrets.toml)",
        "model_not_found": f"the server has no model {model!r} for this key: set {var}_MODEL to one it lists",
        "quota": "the account's quota is used up: check its plan and billing (waiting does not help)",
        "too_large": f"one request is larger than the tokens-per-minute limit: lower {var}_MAX_TOKENS or "
                     "use shorter prompts",
        "not_found": f"no chat-completions route there: check {var}_BASE_URL (it usually ends in /v1)",
        "bad_request": "the server refused the request; its message says why",
    }.get(reason, "")


def classify(out: Attempt, mode: str, role: str = "", model: str = "") -> Failure:
    """The kind of an HTTP-level failure (`out.kind == "http"`)."""
    status, code = out.status, (out.error_code or "")
    text = f"{out.error_message or ''} {out.error or ''}"
    if status is None or out.retryable:
        return Failure("transient")

    def fatal(reason: str) -> Failure:
        return Failure("fatal", reason, _hint(reason, role, model))

    if status == 429:
        if code == "insufficient_quota" or out.error_type == "insufficient_quota" or "quota" in text.lower():
            return fatal("quota")
        if "request too large" in text.lower():
            return fatal("too_large")
        return Failure("rate_limited")
    if status in (401, 403):
        return fatal("auth")
    if status == 404:
        named = code == "model_not_found" or "model" in text.lower()
        return fatal("model_not_found" if named else "not_found")
    if code == "context_length_exceeded" or (status in (400, 413, 422) and _CONTEXT_WORDS.search(text)):
        return fatal("context_length")
    param = out.error_param or ""
    if code in ("unsupported_parameter", "unsupported_value") and param in ADAPTABLE_PARAMS:
        return Failure("unsupported")
    if code == "invalid_json_schema" and mode == "json_schema":
        return Failure("unsupported")
    if mode != "text":
        if status in FORMAT_REJECTED_STATUS and (status == 415 or param.startswith("response_format")
                                                 or _FORMAT_WORDS.search(f"{text} {out.text or ''}")):
            return Failure("format_rejected")
        # llama-cpp-python's server answers a json_schema it lacks with a 500 naming it
        if status >= 500 and (_FORMAT_WORDS.search(f"{text} {out.text or ''}") or mode in text.lower()):
            return Failure("format_rejected")
    if status in RETRYABLE_STATUS or status >= 500:
        return Failure("transient")
    return fatal("bad_request")
