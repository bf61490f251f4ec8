"""kill -9 of `shoal generate --batch` while its batch is in flight, then `--resume`: the same provider
batch is polled (never submitted again), every item is stored once, nothing is paid twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.llm.prices import estimate_cost
from core.store import open_store
from tests.support.openai_platform import OpenAIPlatform
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

ROOT = Path(__file__).resolve().parents[2]
N = 20


def _cli(db: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.cli.main", "--db", str(db), *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_minus_nine_while_a_batch_is_in_flight_then_resume_polls_the_same_batch(tmp_path):
    db = tmp_path / "batch.duckdb"
    store = open_store(db)
    ids = add_snippets(store, N)
    store.checkpoint()
    store.close()
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")

    with OpenAIPlatform(shoal_responder, batch_timing=(0.1, 4.0, 0.1)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SHOAL_"))}
        env.update(SHOAL_GENERATOR_BASE_URL=srv.base_url, SHOAL_GENERATOR_MODEL="gpt-4o-mini",
                   SHOAL_DB=str(db), SHOAL_BATCH_POLL_S="0.05", HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        proc = _cli(db, env, "generate", "--ids", str(ids_file), "--task", "code_generation", "--batch", "--json")
        deadline = time.time() + 60
        while not srv.batches and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(1.0)                            # the runner is polling the batch now
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        (first,) = srv.batches.values()
        assert first.final is None                 # killed between submission and completion

        store = open_store(db)
        job_id = store.scalar("SELECT max(id) FROM jobs")
        assert store.scalar("SELECT status FROM jobs WHERE id = ?", [job_id]) == "running"
        row = store.one("SELECT * FROM batches")
        assert row["provider_batch_id"] == first.id and row["status"] in ("validating", "in_progress")
        assert store.scalar("SELECT count(*) FROM llm_calls") == 0
        store.close()

        proc = _cli(db, env, "generate", "--resume", str(job_id), "--json")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["status"] == "done" and summary["items"]["succeeded"] == N
        assert srv.chat_request_count == 0
        assert len(srv.batches) == 2                # one creation per round: the first was polled, not resubmitted
        assert summary["batch"]["rounds"] == 2 and summary["batch"]["in_flight"] == []
        assert summary["batch"]["batches"][0]["provider_batch_id"] == first.id

    store = open_store(db, read_only=True)
    per_item = store.rows("SELECT i.item_key, count(g.id) AS n FROM job_items i LEFT JOIN generations g "
                          "ON g.job_item_id = i.id GROUP BY 1")
    assert len(per_item) == N and all(r["n"] == 1 for r in per_item)
    assert store.scalar("SELECT count(*) FROM (SELECT generation_id FROM judgments GROUP BY 1 HAVING count(*) > 1)") == 0
    assert store.scalar("SELECT count(*) FROM (SELECT payload_hash FROM llm_calls GROUP BY 1 HAVING count(*) > 1)") == 0
    calls = store.rows("SELECT model, prompt_tokens, completion_tokens, cost_usd FROM llm_calls")
    assert len(calls) == N + summary["judged"] == summary["usage"]["calls"]      # each line paid once
    online = sum(estimate_cost(c["model"], c["prompt_tokens"], c["completion_tokens"]) for c in calls)
    assert summary["usage"]["cost_usd"] == pytest.approx(online / 2, abs=1e-6)   # the batch price
    print(f"\nbatch job: {srv.chat_request_count} chat requests, {len(srv.batches)} batches created, "
          f"cost ${summary['usage']['cost_usd']:.6f} at the batch price vs ${online:.6f} online")
    store.close()
