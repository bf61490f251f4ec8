"""Provider Batch APIs: many calls in one batch, answered within a day at half price.

Two routes, chosen per profile (`route_of`): OpenAI's Batch API (core.llm.batch.openai_route: a JSONL
file of chat-completions bodies + /v1/batches; also any server with the same endpoints) and
Anthropic's Message Batches (core.llm.batch.anthropic_route: Messages API params in one create
request). A profile takes Anthropic's when its `batch_api` says so (the Models panel's Anthropic
preset sets it) or, left "auto", when its server is api.anthropic.com; else OpenAI's.

What both share (errors, batch and line records, the provider interface) is in
core.llm.batch.shared, re-exported here; nothing here touches the database: `core.generate.jobs.batch`
does the bookkeeping for every route.
"""
from __future__ import annotations

from urllib.parse import urlparse

from core.config import Profile
from core.errors import ShoalError
from core.llm.batch.anthropic_route import AnthropicBatches
from core.llm.batch.openai_route import OpenAIBatches
from core.llm.batch.shared import (
    TERMINAL,
    BatchAPIError,
    BatchInfo,
    BatchProvider,
    LineResult,
    answered_attempt,
    chunk_lines,
    to_jsonl,
)

__all__ = ["TERMINAL", "BatchAPIError", "BatchInfo", "BatchProvider", "LineResult", "answered_attempt",
           "chunk_lines", "to_jsonl", "route_of", "provider_for", "check_batch_profiles", "ROUTES"]

ROUTES = ("openai", "anthropic")
ANTHROPIC_HOSTS = ("api.anthropic.com",)


def route_of(profile: Profile) -> str:
    """"openai" or "anthropic": which Batch API a profile's batch jobs go through."""
    if profile.batch_api in ROUTES:
        return profile.batch_api
    host = (urlparse(profile.base_url or "").hostname or "").lower()
    return "anthropic" if host in ANTHROPIC_HOSTS else "openai"


def provider_for(profile: Profile) -> BatchProvider:
    """The Batch API client for a profile (the embedded local model has none)."""
    if profile.source == "local":
        raise ShoalError("The embedded local model has no Batch API: run the job without --batch.")
    if route_of(profile) == "anthropic":
        return AnthropicBatches(profile)
    return OpenAIBatches(profile)


def check_batch_profiles(profiles: dict) -> None:
    """Refuse a batch job whose endpoints have no Batch API, before anything is planned."""
    for profile in profiles.values():
        provider_for(profile).close()
