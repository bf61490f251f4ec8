"""kill -9 of `shoal embed --engine ray` after its first shards, then a rerun: the shards already
written are kept and imported, never recomputed, and only the rest is embedded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.embed import run as embed
from core.store import open_store
from tests.support.snippets import stdlib_snippets

ROOT = Path(__file__).resolve().parents[2]
KEY = "all-MiniLM-L6-v2"


def _cli(db: Path, shards: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.cli.main", "--db", str(db), "embed", "--engine", "ray",
                             "--backend", "torch", "--shard-size", "20", "--shard-dir", str(shards), *extra],
                            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), so the local Ray instance the CLI started dies with it."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parent.items() if p in frontier]
        found += kids
        frontier = kids
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the CLI and every process it started, by their ids."""
    children = _descendants(proc.pid)
    for pid in [proc.pid, *children]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(30)
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_mid_run_resumes_by_shard(tmp_path):
    pytest.importorskip("ray")
    db, shards = tmp_path / "resume.duckdb", tmp_path / "shards"
    snips = stdlib_snippets(200)
    with open_store(db) as s:
        s.insert_df("snippets", snips)
    n = len(snips)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env.update(HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    folder = shards / KEY
    proc = _cli(db, shards, env)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob("shard-*.parquet"))) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    _kill_tree(proc)
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.parquet")}
    assert 2 <= len(before) < n // 20, before
    with open_store(db) as s:
        kept = s.scalar("SELECT count(*) FROM embeddings")
        imported = s.scalar("SELECT count(*) FROM embedding_shards")
    assert 0 < kept < n and imported <= len(before)

    rerun = _cli(db, shards, env, "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    r = json.loads(out)
    assert r["shards_resumed"] == len(before) - imported        # written but not imported: imported now
    assert r["n_cached"] == kept + r["n_resumed"]                 # nothing done before is redone
    assert r["n_embedded"] == n - r["n_cached"]
    for name, mtime in before.items():                            # the shards of the killed run are untouched
        assert (folder / name).stat().st_mtime_ns == mtime
    new = sorted(p.name for p in folder.glob("shard-*.parquet") if p.name not in before)
    assert len(new) == r["shards_written"] and min(new) > max(before)
    with open_store(db) as s:
        assert s.scalar("SELECT count(*) FROM embeddings") == n
        assert s.scalar("SELECT count(*) FROM embedding_shards") == len(before) + len(new)
        assert s.scalar("SELECT sum(n_rows) FROM embedding_shards") == n
        ids, X, _ = embed.load_embeddings(s, KEY)
        texts = embed.snippet_frame(s).set_index("snippet_id").loc[ids, "text"].tolist()
    ref = embed.encode(embed.load_model(None, "torch"), texts)
    cos = (X * ref).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999
