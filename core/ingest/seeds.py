"""OSS-Instruct seeds (Magicoder): one seed per source file, 1-15 consecutive lines chosen at random.

The RNG seed is derived from the run seed and the file's content, stored in `snippets.seed_rng`,
so `draw_seed(lines, seed_rng)` reproduces the seed exactly.
"""
from __future__ import annotations

import hashlib
import random

from core.ingest.model import IngestProblem, Snippet

SEED_MIN_LINES, SEED_MAX_LINES = 1, 15


def seed_rng_for(run_seed: int, content: str) -> int:
    """Per-file RNG seed: stable for the same file and run seed, whatever the file order."""
    digest = hashlib.sha256(f"{run_seed}|{content}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:6], "big")


def draw_seed(lines: list[str], seed_rng: int) -> tuple[int, int]:
    """(start, end) line indexes (0-based, end exclusive) of the seed drawn with `seed_rng`."""
    rng = random.Random(seed_rng)
    n = rng.randint(SEED_MIN_LINES, SEED_MAX_LINES)
    n = min(n, len(lines))
    start = rng.randint(0, len(lines) - n)
    return start, start + n


def seed_of(content: str, run_seed: int, where: str, common: dict) -> Snippet | IngestProblem:
    """The file's OSS-Instruct seed: 1-15 consecutive lines drawn reproducibly (seed_rng stored)."""
    lines = content.split("\n")
    rng_seed = seed_rng_for(run_seed, content)
    start, end = draw_seed(lines, rng_seed)
    seed_text = "\n".join(lines[start:end])
    if not seed_text.strip():
        return IngestProblem(f"{where}:{start + 1}", "blank_seed", f"the drawn lines {start + 1}-{end} are blank",
                             "filtered")
    return Snippet(code=seed_text, kind="seed", start_line=start + 1, end_line=end,
                   seed_rng=rng_seed, location=f"{where}:{start + 1}", **common)
