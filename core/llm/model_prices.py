"""Prices per model set on the Generate page (DuckDB `model_prices`), over core.llm.prices' table.

`apply_prices(store)` puts them into this process's price table (`core.llm.prices.set_price_overlay`),
so every cost figure of the app -- the estimate before a job, the cost each call records, the
batch price -- uses what the user set, also for a job that starts later from the queue or is
resumed. `price_of` tells the panel what a model costs now and where that figure comes from.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.llm import prices
from core.errors import ShoalError
from core.store import Store

__all__ = ["ModelPrice", "set_model_price", "clear_model_price", "stored_prices", "apply_prices", "price_of",
           "batch_share"]


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
    """model -> {input, output[, batch_discount]} as core.llm.prices' table entries."""
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
    prices.set_price_overlay(table)
    return table


def price_of(store: Store, model: str, base_url: str | None = None) -> ModelPrice:
    """What `model` costs now: the price set here, else the price table's, else 0 (unknown)."""
    entry = stored_prices(store).get(model)
    if entry is not None:
        share = entry.get("batch_discount")
        return ModelPrice(model, entry["input"], entry["output"],
                          prices.batch_discount(model, base_url) if share is None else share, "set here")
    known = prices.price_for(model) if model else (0.0, 0.0)
    source = "price table" if known != (0.0, 0.0) else "unknown (free)"
    return ModelPrice(model, known[0], known[1], prices.batch_discount(model, base_url) if model else 1.0, source)


def batch_share(profiles: dict) -> float:
    """The batch price as a share of the online one for a job on `profiles` (the larger of the
    two roles': an upper bound for the estimate)."""
    return max(prices.batch_discount(p.model, p.base_url) for p in profiles.values())
