"""Decontamination: does an example contain a benchmark string?

Substring mode (bigcode / Magicoder): a benchmark string occurring in the example text as a
case-insensitive substring flags it. Both sides are lower-cased and runs of whitespace
collapsed to one space first, so CRLF files or re-indented code still match. All strings are
searched in one pass per example with an Aho-Corasick automaton (pyahocorasick); without
that package a slower pre-filtered `str.find` scan is used.

N-gram mode (datatrove): any shared n-gram of word tokens (default 12) flags an example —
it catches near copies that differ in punctuation or a few words.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from core.dataset.checks.benchmarks import BenchmarkString, load_benchmarks, parse_spec
from core.progress import ProgressFn, check_cancel, report

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
MAX_HITS_STORED = 20
MATCH_PREVIEW = 300


def match_form(text: str) -> str:
    """Lower case, runs of white space as one space: the form substrings are matched in."""
    return _WS.sub(" ", text).strip().lower()


@dataclass
class Hit:
    benchmark: str
    item: str
    field: str
    method: str      # substring | ngram
    matched: str     # the benchmark text (substring mode) or the shared n-gram

    def as_dict(self) -> dict:
        return {"benchmark": self.benchmark, "item": self.item, "field": self.field,
                "method": self.method, "matched": self.matched[:MATCH_PREVIEW]}


@dataclass
class Matcher:
    """Built once from the benchmark strings, then applied to many texts."""
    strings: list[BenchmarkString]
    ngram: int | None = None
    min_chars: int = 0
    _keys: dict[str, list[int]] = field(default_factory=dict)
    _automaton: Any = None   # an ahocorasick.Automaton when pyahocorasick is installed (it has no types)
    _ngrams: dict[tuple, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, s in enumerate(self.strings):
            key = match_form(s.text)
            if len(key) >= max(1, self.min_chars):
                self._keys.setdefault(key, []).append(i)
        try:
            import ahocorasick
        except ImportError:
            self._automaton = None
        else:
            a = ahocorasick.Automaton()
            for key, idx in self._keys.items():
                a.add_word(key, idx)
            if self._keys:
                a.make_automaton()
                self._automaton = a
        if self.ngram:
            for i, s in enumerate(self.strings):
                toks = _WORD.findall(s.text.lower())
                for j in range(len(toks) - self.ngram + 1):
                    self._ngrams.setdefault(tuple(toks[j:j + self.ngram]), i)

    @property
    def n_keys(self) -> int:
        return len(self._keys)

    def substring_hits(self, norm_text: str) -> set[int]:
        found: set[int] = set()
        if not self._keys:
            return found
        if self._automaton is not None:
            for _, idx in self._automaton.iter(norm_text):
                found.update(idx)
        else:  # pre-filter: a key can only occur if its first 8 chars do
            for key, idx in self._keys.items():
                if key[:8] in norm_text and key in norm_text:
                    found.update(idx)
        return found

    def ngram_hits(self, text: str) -> dict[int, str]:
        out: dict[int, str] = {}
        if not self.ngram or not self._ngrams:
            return out
        toks = _WORD.findall(text.lower())
        n = self.ngram
        for j in range(len(toks) - n + 1):
            i = self._ngrams.get(tuple(toks[j:j + n]))
            if i is not None and i not in out:
                out[i] = " ".join(toks[j:j + n])
        return out

    def hits(self, text: str) -> list[Hit]:
        sub = self.substring_hits(match_form(text))
        out = [Hit(self.strings[i].benchmark, self.strings[i].item, self.strings[i].field,
                   "substring", self.strings[i].text) for i in sorted(sub)]
        seen_items = {(h.benchmark, h.item) for h in out}
        for i, gram in self.ngram_hits(text).items():
            s = self.strings[i]
            if i in sub or (s.benchmark, s.item) in seen_items:
                continue
            seen_items.add((s.benchmark, s.item))
            out.append(Hit(s.benchmark, s.item, s.field, "ngram", gram))
        return out


def find_contamination(texts: Mapping[int, str], strings: list[BenchmarkString],
                       ngram: int | None = None, progress: ProgressFn | None = None,
                       cancel: threading.Event | None = None) -> dict[int, list[Hit]]:
    """example id -> hits (empty list when clean)."""
    matcher = Matcher(strings, ngram=ngram)
    out: dict[int, list[Hit]] = {}
    total = len(texts)
    for n, (key, text) in enumerate(texts.items(), 1):
        out[key] = matcher.hits(text or "")
        if n % 500 == 0 or n == total:
            check_cancel(cancel)
            report(progress, n, total, "decontamination")
    return out


def run_decontamination(store, benchmarks: str | list | None = "humaneval", ngram: int | None = None,
                        generation_ids: Iterable[int] | None = None,
                        progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None) -> dict:
    """Check every parsed example against the benchmarks; record a run; return its summary."""
    from core.dataset.checks.examples import load_examples
    from core.dataset.checks.results import record_run

    spec = parse_spec(benchmarks) if benchmarks is None or isinstance(benchmarks, str) else benchmarks
    t0 = time.perf_counter()
    strings = load_benchmarks(spec)
    t_load = time.perf_counter() - t0
    ex = load_examples(store)
    if generation_ids is not None:
        ex = ex[ex["generation_id"].isin(set(generation_ids))]
    texts = dict(zip(ex["generation_id"].astype(int), ex["text"]))
    t1 = time.perf_counter()
    found = find_contamination(texts, strings, ngram=ngram, progress=progress, cancel=cancel)
    t_match = time.perf_counter() - t1
    per_benchmark: dict[str, int] = {}
    for hits in found.values():
        for b in {h.benchmark for h in hits}:
            per_benchmark[b] = per_benchmark.get(b, 0) + 1
    flagged = sorted(g for g, h in found.items() if h)
    strings_per_benchmark: dict[str, int] = {}
    for s in strings:
        strings_per_benchmark[s.benchmark] = strings_per_benchmark.get(s.benchmark, 0) + 1
    summary = {
        "n_examples": len(found), "n_flagged": len(flagged), "flagged": flagged[:1000],
        "flagged_per_benchmark": per_benchmark, "strings_per_benchmark": strings_per_benchmark,
        "ngram": ngram, "seconds_load": round(t_load, 3), "seconds_match": round(t_match, 3),
    }
    params = {"benchmarks": [f"{n}={p}" if p else n for n, p in spec], "ngram": ngram,
              "method": "substring" + (f"+ngram{ngram}" if ngram else "")}
    results = [(g, not hits, {"hits": [h.as_dict() for h in hits[:MAX_HITS_STORED]], "n_hits": len(hits)})
               for g, hits in found.items()]
    summary["run_id"] = record_run(store, "decontamination", params, summary, results)
    return summary
