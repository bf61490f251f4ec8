"""OpenAI's Batch API, through the `openai` package (also any server with the same `/v1/files` +
`/v1/batches` endpoints).

Each input line is `{custom_id, method: "POST", url: "/v1/chat/completions", body}` where `body` is
exactly what the online path would post for that call (`LLMClient.request_body`); the file is
uploaded with purpose "batch", a batch is created with a 24h completion window, polled, and its
output and error files are read back and mapped to their lines by `custom_id`. A batch created just
before a crash (its id never recorded) is found again by its input file id.
"""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Callable

import openai
from pydantic import BaseModel

from core.config import Profile, resolve_api_key
from core.llm.batch.shared import (
    BatchAPIError,
    BatchInfo,
    LineResult,
    RecordBatch,
    answered_attempt,
    to_jsonl,
    unrun_attempt,
)
from core.llm.formats import MODES
from core.llm.transport import RETRYABLE_STATUS, Attempt, BadBody, read_completion, short_error

if TYPE_CHECKING:
    from core.llm.client import LLMClient

BATCH_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_LINES = 50_000                  # OpenAI: at most 50,000 requests per batch ...
_MAX_BYTES = 190 * 1024 * 1024       # ... and a 200 MB input file (kept under it)
_ADOPT_SCAN = 500                    # recent provider batches searched for one created before a crash


def batch_line(custom_id: str, body: dict) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}


def parse_openai_results(text: str) -> list[LineResult]:
    """The lines of an output or error file ({id, custom_id, response: {status_code, body}, error})."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        response = line.get("response") or None
        error = line.get("error") or None
        out.append(LineResult(
            custom_id=str(line.get("custom_id")),
            status_code=response.get("status_code") if isinstance(response, dict) else None,
            body=response.get("body") if isinstance(response, dict) else None,
            error_code=error.get("code") if isinstance(error, dict) else None,
            error_message=error.get("message") if isinstance(error, dict) else None))
    return out


def openai_line_attempt(result: LineResult, schema: type[BaseModel] | None, model: str, *,
                        prices: dict | None = None, base_url: str | None = None) -> Attempt:
    """The Attempt an online request would have given for this line: kind ok / parse with the
    reply parsed against `schema`, or http with the status and the short error; cost at the
    batch price."""
    if result.status_code is None:
        return unrun_attempt(result.error_code, result.error_message)
    body = result.body if isinstance(result.body, dict) else {}
    if result.status_code != 200:
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = str(inner.get("message") or "") if isinstance(inner, dict) else ""
        return Attempt(kind="http", status=result.status_code, text=json.dumps(body)[:4000],
                       error=f"http {result.status_code}" + (f": {message[:200]}" if message else ""))
    content = json.dumps(body).encode()
    response = SimpleNamespace(headers={"content-type": "application/json"}, content=content,
                               text=content.decode())
    try:
        text, finish, prompt_tokens, completion_tokens = read_completion(response)
    except BadBody as exc:
        return Attempt(kind="http", status=200, error=str(exc), text=exc.text, retryable=True)
    return answered_attempt(text, finish, prompt_tokens, completion_tokens, schema, model, prices=prices,
                            base_url=base_url)


def _api_error(what: str, exc: Exception) -> BatchAPIError:
    status = getattr(exc, "status_code", None)
    retryable = status is None or status in RETRYABLE_STATUS
    hint = ""
    if status == 404 and what in ("upload", "create"):
        hint = " (does this server have a Batch API? run the job without --batch)"
    return BatchAPIError(f"batch {what}: {short_error(exc)}{hint}", retryable)


class OpenAIBatches:
    """OpenAI's Files + Batches endpoints for one profile's server (sync `openai.OpenAI`)."""

    provider = "openai"
    modes: tuple[str, ...] = MODES
    max_lines = MAX_LINES
    max_bytes = _MAX_BYTES

    def __init__(self, profile: Profile, client: openai.OpenAI | None = None):
        self.profile = profile
        if client is None:
            client = openai.OpenAI(base_url=profile.base_url, api_key=resolve_api_key(profile),
                                   max_retries=2, timeout=max(60.0, profile.timeout_s))
            if not profile.is_openai:
                client.organization = client.project = None
        self.client = client

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except openai.APIError as exc:
            raise _api_error(what, exc) from None

    def first_model(self) -> str:
        ids = [m.id for m in self._call("models", self.client.models.list)]
        if not ids:
            raise BatchAPIError("the server lists no models; set the model name in the profile", False)
        return ids[0]

    def request(self, llm: LLMClient, messages: list[dict], schema: type[BaseModel], mode: str,
                correction: list[dict]) -> dict:
        """Exactly the body the online path posts for this call."""
        return llm.request_body(messages, schema, mode, correction)

    def line(self, custom_id: str, body: dict) -> dict:
        return batch_line(custom_id, body)

    def upload(self, lines: list[dict], name: str = "shoal-batch.jsonl") -> str:
        f = self._call("upload", self.client.files.create, file=(name, to_jsonl(lines)), purpose="batch")
        return f.id

    def create(self, input_file_id: str, metadata: dict[str, str]) -> BatchInfo:
        b = self._call("create", self.client.batches.create, input_file_id=input_file_id,
                       endpoint=BATCH_ENDPOINT, completion_window=COMPLETION_WINDOW, metadata=metadata)
        return _info(b)

    def submit(self, batch: dict, lines: Callable[[], list[tuple[str, dict]]], record: RecordBatch,
               claimed: Callable[[str], bool]) -> BatchInfo:
        """Upload the file (its id recorded at once), then create the batch; a file uploaded before
        a restart is looked up first: the batch may exist already (file ids are unique)."""
        info = None
        if batch["input_file_id"] is None:
            file_id = self.upload([batch_line(cid, body) for cid, body in lines()],
                                  f"shoal-job{batch['job_id']}-batch{batch['id']}.jsonl")
            record(input_file_id=file_id, status="uploaded")
        else:
            file_id = batch["input_file_id"]
            info = self.find(file_id)
        if info is None:
            info = self.create(file_id, {"shoal_job": str(batch["job_id"]), "shoal_batch": str(batch["id"])})
        return info

    def find(self, input_file_id: str) -> BatchInfo | None:
        """The batch already created from `input_file_id`, if any: how a batch created just before
        a crash, whose id was never recorded, is found again."""
        page = self._call("list", self.client.batches.list, limit=100)
        for n, b in enumerate(page):
            if b.input_file_id == input_file_id:
                return _info(b)
            if n >= _ADOPT_SCAN:
                break
        return None

    def retrieve(self, batch_id: str) -> BatchInfo:
        return _info(self._call("poll", self.client.batches.retrieve, batch_id))

    def cancel(self, batch_id: str) -> BatchInfo:
        return _info(self._call("cancel", self.client.batches.cancel, batch_id))

    def results(self, info: BatchInfo) -> dict[str, LineResult]:
        """custom_id -> its result, from the output file and the error file."""
        out: dict[str, LineResult] = {}
        for file_id in (info.output_file_id, info.error_file_id):
            if file_id:
                text = self._call("download", self.client.files.content, file_id).text
                for r in parse_openai_results(text):
                    out[r.custom_id] = r
        return out

    def line_attempt(self, result: LineResult, schema: type[BaseModel] | None, model: str, *,
                     prices: dict | None = None, base_url: str | None = None) -> Attempt:
        return openai_line_attempt(result, schema, model, prices=prices, base_url=base_url)


def _info(b) -> BatchInfo:
    counts = getattr(b, "request_counts", None)
    errors = getattr(getattr(b, "errors", None), "data", None) or []
    text = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if getattr(e, "line", None) else "")
                     for e in errors) or None
    return BatchInfo(id=b.id, status=b.status, input_file_id=b.input_file_id, output_file_id=b.output_file_id,
                     error_file_id=b.error_file_id, total=getattr(counts, "total", 0) or 0,
                     completed=getattr(counts, "completed", 0) or 0, failed=getattr(counts, "failed", 0) or 0,
                     errors=text, metadata=dict(b.metadata or {}), created_at=b.created_at)
