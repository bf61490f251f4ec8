"""Price table for LLM calls: USD per million prompt / completion tokens.

The built-in table holds public list prices of common OpenAI models (check your provider:
prices change). Override or extend it with a JSON or TOML file named by $SHOAL_PRICES_FILE:
    {"my-model": {"input": 0.2, "output": 0.6}}        # JSON
    [my-model]\ninput = 0.2\noutput = 0.6               # TOML
Unknown and local models cost 0.

Batch APIs charge a share of the online price (`batch_discount`): 0.5 for OpenAI and
Anthropic models (by provider, from the model name or the server's host), 1.0 for anyone
else unless the price file says otherwise, per model (`{"my-model": {..., "batch_discount":
0.4}}`) or per provider (`{"batch_discount": {"openai": 0.5}}`).

Prices set on the Generate page (DuckDB `model_prices`) are laid over both: `apply_prices(store)`
makes them this process's overlay (`set_price_overlay`), so every cost figure of the app -- the
estimate before a job, the cost each call records, the batch price -- uses what the user set, also
for a job that starts later from the queue or is resumed. `price_of` tells the Models panel what a
model costs now and where that figure comes from.
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from core.errors import ShoalError
from core.store import Store

# model -> (USD per 1M prompt tokens, USD per 1M completion tokens)
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4": (30.00, 60.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


# provider -> share of the online price a batch request costs
BATCH_DISCOUNTS: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}
_PROVIDER_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}
_PROVIDER_PREFIXES = {"openai": ("gpt-", "o1", "o3", "o4", "chatgpt-", "davinci", "babbage"),
                      "anthropic": ("claude-",)}


def _normalise(table: dict) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for model, entry in table.items():
        if model == "batch_discount":
            continue
        try:
            if isinstance(entry, dict):
                out[str(model)] = (float(entry.get("input", 0.0)), float(entry.get("output", 0.0)))
            else:
                prompt, completion = entry
                out[str(model)] = (float(prompt), float(completion))
        except (TypeError, ValueError):
            raise ShoalError(f"Price entry for {model!r} must be {{input, output}} in USD per "
                             f"million tokens, got {entry!r}.") from None
    return out


# prices set in the app (DuckDB `model_prices`, through apply_prices): over the table and the file
_OVERLAY: dict[str, dict] = {}


def set_price_overlay(table: dict[str, dict]) -> None:
    """Replace this process's overlay: model -> {input, output[, batch_discount]}."""
    global _OVERLAY
    _normalise(table)      # refuse a bad entry now, not at the next call's cost
    _OVERLAY = {str(k): dict(v) for k, v in table.items()}


def load_prices(path: str | os.PathLike | None = None) -> dict[str, tuple[float, float]]:
    """The built-in table updated with the file at `path` (default $SHOAL_PRICES_FILE), then
    with the prices set in the app (`set_price_overlay`)."""
    path = path or os.environ.get("SHOAL_PRICES_FILE")
    if not path:
        return {**DEFAULT_PRICES, **_normalise(_OVERLAY)}
    p = Path(path).expanduser()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as exc:
        raise ShoalError(f"Cannot read the price table {p}: {exc}") from None
    return {**_load_file(str(p), mtime), **_normalise(_OVERLAY)}


@lru_cache(maxsize=8)
def _load_file(path: str, _mtime_ns: int) -> dict[str, tuple[float, float]]:
    prices = dict(DEFAULT_PRICES)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ShoalError(f"Cannot read the price table {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ShoalError(f"The price table {p} must map model names to prices.")
    prices.update(_normalise(data))
    return prices


def price_for(model: str, prices: dict | None = None) -> tuple[float, float]:
    """(input, output) USD per 1M tokens: exact name, then provider prefix dropped
    ("openai/gpt-4o"), then the longest known prefix ("gpt-4o-mini-2024-07-18"); else (0, 0)."""
    table = _normalise(prices) if prices is not None else load_prices()
    if not model:
        return (0.0, 0.0)
    candidates = [model]
    if "/" in model:
        candidates.append(model.rsplit("/", 1)[1])
    for name in candidates:
        if name in table:
            return table[name]
    for name in candidates:
        best = max((k for k in table if name.startswith(k + "-")), key=len, default=None)
        if best is not None:
            return table[best]
    return (0.0, 0.0)


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  prices: dict | None = None) -> float:
    """USD for one call; 0 for unknown or local models."""
    p_in, p_out = price_for(model, prices)
    return (max(prompt_tokens, 0) * p_in + max(completion_tokens, 0) * p_out) / 1_000_000


# ---------------------------------------------------------------- batch prices


def provider_of(model: str, base_url: str | None = None) -> str | None:
    """"openai" / "anthropic" from the server's host, else from the model name; None if unknown."""
    host = (urlparse(base_url or "").hostname or "").lower()
    if host in _PROVIDER_HOSTS:
        return _PROVIDER_HOSTS[host]
    name = (model or "").lower().rsplit("/", 1)[-1]
    for provider, prefixes in _PROVIDER_PREFIXES.items():
        if name.startswith(prefixes):
            return provider
    return None


def _raw_table(path: str | os.PathLike | None = None) -> dict:
    path = path or os.environ.get("SHOAL_PRICES_FILE")
    if not path:
        return {}
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ShoalError(f"Cannot read the price table {p}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _share(value, where: str) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise ShoalError(f"batch_discount for {where} must be a share of the online price "
                         f"between 0 and 1, got {value!r}.")
    return share


def batch_discount(model: str, base_url: str | None = None, path: str | os.PathLike | None = None) -> float:
    """The share of the online price a batch request of `model` costs (see the module docstring)."""
    table = _raw_table(path)
    for entry in (_OVERLAY.get(model), table.get(model)) if model else ():
        if isinstance(entry, dict) and entry.get("batch_discount") is not None:
            return _share(entry["batch_discount"], model)
    provider = provider_of(model, base_url)
    per_provider = table.get("batch_discount")
    if provider and isinstance(per_provider, dict) and provider in per_provider:
        return _share(per_provider[provider], provider)
    return BATCH_DISCOUNTS.get(provider or "", 1.0)


def estimate_batch_cost(model: str, prompt_tokens: int, completion_tokens: int, prices: dict | None = None,
                        base_url: str | None = None) -> float:
    """USD for one batch request: the online price times the batch discount."""
    return estimate_cost(model, prompt_tokens, completion_tokens, prices) * batch_discount(model, base_url)


# ---------------------------------------------------------------- prices set in the app (DuckDB)


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input_per_m: float              # USD per 1M prompt tokens
    output_per_m: float             # USD per 1M completion tokens
    batch_discount: float           # share of the online price a batch request costs
    source: str                     # "set here" | "price table" | "unknown (free)"

    @property
    def batch_input_per_m(self) -> float:
        return self.input_per_m * self.batch_discount

    @property
    def batch_output_per_m(self) -> float:
        return self.output_per_m * self.batch_discount


def set_model_price(store: Store, model: str, input_per_m: float, output_per_m: float,
                    batch_discount: float | None = None) -> None:
    model = model.strip()
    if not model:
        raise ShoalError("Name the model the price is for.")
    if input_per_m < 0 or output_per_m < 0:
        raise ShoalError("A price cannot be negative.")
    if batch_discount is not None and not 0.0 <= batch_discount <= 1.0:
        raise ShoalError("The batch price is a share of the online price, between 0 and 1.")
    store.write(lambda cur: cur.execute(
        "INSERT INTO model_prices (model, input_per_m, output_per_m, batch_discount) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model) DO UPDATE SET input_per_m = excluded.input_per_m, output_per_m = excluded.output_per_m, "
        "batch_discount = excluded.batch_discount, updated_at = now()",
        [model, float(input_per_m), float(output_per_m), batch_discount]))
    apply_prices(store)


def clear_model_price(store: Store, model: str) -> None:
    store.write(lambda cur: cur.execute("DELETE FROM model_prices WHERE model = ?", [model.strip()]))
    apply_prices(store)


def stored_prices(store: Store) -> dict[str, dict]:
    """model -> {input, output[, batch_discount]}, entries as in the price file."""
    out: dict[str, dict] = {}
    for r in store.rows("SELECT model, input_per_m, output_per_m, batch_discount FROM model_prices"):
        entry = {"input": float(r["input_per_m"]), "output": float(r["output_per_m"])}
        if r["batch_discount"] is not None:
            entry["batch_discount"] = float(r["batch_discount"])
        out[r["model"]] = entry
    return out


def apply_prices(store: Store) -> dict[str, dict]:
    """Make the stored prices this process's overlay; returns them."""
    table = stored_prices(store)
    set_price_overlay(table)
    return table


def price_of(store: Store, model: str, base_url: str | None = None) -> ModelPrice:
    """What `model` costs now: the price set here, else the price table's, else 0 (unknown)."""
    entry = stored_prices(store).get(model)
    if entry is not None:
        share = entry.get("batch_discount")
        return ModelPrice(model, entry["input"], entry["output"],
                          batch_discount(model, base_url) if share is None else share, "set here")
    known = price_for(model) if model else (0.0, 0.0)
    source = "price table" if known != (0.0, 0.0) else "unknown (free)"
    return ModelPrice(model, known[0], known[1], batch_discount(model, base_url) if model else 1.0, source)


def batch_share(profiles: dict) -> float:
    """The batch price as a share of the online one for a job on `profiles` (the larger of the
    two roles': an upper bound for the estimate)."""
    return max(batch_discount(p.model, p.base_url) for p in profiles.values())
