"""Push an export folder (its data file(s) and README.md, which is already a Hub dataset card) to a
Hugging Face Hub dataset repository with `huggingface_hub.HfApi`: `create_repo` (exist_ok), then one
`upload_folder` commit.

The endpoint is huggingface_hub's own `HF_ENDPOINT` (read at push time; tests point it at a loopback
server). The token is the one a page passes (typed, kept in that browser session only) or HF_TOKEN;
it is never stored, and every error message is redacted with it before it leaves this module.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from core.errors import ShoalError
from core.redact import configured_secrets, redact

DEFAULT_ENDPOINT = "https://huggingface.co"
# the Hub's own rule (huggingface_hub.utils.validate_repo_id), with the namespace required
REPO_ID_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/"
                        r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
WRITTEN = "The local export was written"


def hub_endpoint() -> str:
    """Where a push goes: HF_ENDPOINT, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def env_token() -> str | None:
    """The token in the environment (HF_TOKEN, or the older HUGGING_FACE_HUB_TOKEN), if any."""
    return (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip() or None


def token_source(typed: str | None) -> str:
    """Which token a push would use, in words (never the token itself)."""
    if typed and typed.strip():
        return "the token typed here (kept in this browser session only, never saved)"
    if env_token():
        return "HF_TOKEN from the environment"
    return "none yet: type a token with write access, or set HF_TOKEN"


def repo_url(repo_id: str, endpoint: str | None = None) -> str:
    return f"{endpoint or hub_endpoint()}/datasets/{repo_id}"


def check_repo_id(repo_id: str) -> str:
    """`repo_id` stripped, or a ShoalError that says what a repository id looks like."""
    rid = (repo_id or "").strip()
    if not REPO_ID_RE.match(rid) or ".." in rid or "--" in rid:
        raise ShoalError(f"{rid!r} is not a Hub repository id: use owner/name (your user or organization, a "
                         "slash, the dataset's name; letters, digits, '-', '_' and '.').")
    return rid


def push_folder(folder: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool = False,
                commit_message: str = "Upload dataset exported with Shoal") -> str:
    """Upload every file of `folder` to the dataset repo `repo_id` (created when missing); the repo's URL.

    Raises ShoalError (its message redacted, the token never in it) when offline, without a token,
    or when the Hub refuses or cannot be reached; the folder itself is left as it is."""
    rid = check_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise ShoalError(f"{folder} is not an export folder (it is gone, or was never written).")
    if hub_offline():
        raise ShoalError(f"The Hugging Face Hub is offline here (HF_HUB_OFFLINE is set), so nothing was pushed "
                         f"to {rid}. {WRITTEN}.")
    token = (token or "").strip() or env_token()
    if not token:
        raise ShoalError(f"Pushing to {rid} needs a Hub token with write access (type one on the Dataset page, "
                         f"or set HF_TOKEN). {WRITTEN}.")
    endpoint = hub_endpoint()
    try:
        from huggingface_hub import HfApi
        api = HfApi(endpoint=endpoint, token=token)
        api.create_repo(rid, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=rid, repo_type="dataset", commit_message=commit_message)
    except Exception as exc:   # HTTP refusals, connection errors, offline mode: one clear message each
        raise ShoalError(redact(_explain(exc, rid, endpoint), [token, *configured_secrets()])) from None
    return repo_url(rid, endpoint)


def _explain(exc: Exception, rid: str, endpoint: str) -> str:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return (f"The Hugging Face Hub is offline in this process (HF_HUB_OFFLINE was set when it started), "
                f"so nothing was pushed to {rid}. {WRITTEN}.")
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) and exc.response is not None else None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if status == 401:
        why = "the Hub refused the token (401 Unauthorized): check that it is valid and has write access"
    elif status == 403:
        why = f"the token may not write to {rid} (403 Forbidden): use a token of that user or organization"
    elif status is not None:
        why = f"the Hub answered {status}: {getattr(exc, 'server_message', None) or first}"
    elif type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout", "ConnectionError"):
        why = f"could not reach {endpoint} ({first})"
    else:
        why = f"{type(exc).__name__}: {first}"
    return f"Push to {rid} failed: {why}. {WRITTEN}."
