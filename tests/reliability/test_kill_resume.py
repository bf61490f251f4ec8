"""kill -9 of `shoal generate` in the middle of a job, then `--resume`: nothing lost, nothing duplicated,
and no call that was already answered is sent again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

ROOT = Path(__file__).resolve().parents[2]
N = 40


def _cli(db: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.cli.main", "--db", str(db), *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _messages_key(messages) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


@pytest.mark.slow
def test_kill_minus_nine_then_resume_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "kill.duckdb"
    store = open_store(db)
    ids = add_snippets(store, N)
    store.checkpoint()
    store.close()
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")

    with FakeOpenAIServer(shoal_responder, latency_s=0.25) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SHOAL_"))}
        env.update(SHOAL_GENERATOR_BASE_URL=srv.base_url, SHOAL_GENERATOR_MODEL="fake-model",
                   SHOAL_DB=str(db), HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        proc = _cli(db, env, "generate", "--ids", str(ids_file), "--task", "code_generation",
                    "--concurrency", "4", "--pool-refresh", "8", "--json")
        deadline = time.time() + 60
        while len(srv.requests) < 30 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.5)                          # let in-flight server threads record their requests
        sent_before = len(srv.requests)

        store = open_store(db)
        job_id = store.scalar("SELECT max(id) FROM jobs")
        done_before = store.scalar("SELECT count(*) FROM job_items WHERE status = 'succeeded'")
        assert 0 < done_before < N, "the kill must land in the middle of the job"
        assert store.scalar("SELECT status FROM jobs WHERE id = ?", [job_id]) == "running"
        answered = {_messages_key(json.loads(r["request"])["messages"]) for r in store.rows(
            "SELECT request FROM llm_calls WHERE error IS NULL AND response_text IS NOT NULL")}
        assert answered
        blocks_before = json.loads(store.scalar("SELECT params FROM jobs WHERE id = ?", [job_id]))["pool_snapshots"]
        assert len(blocks_before) >= 2            # the pools were refreshed before the kill ...
        store.close()

        proc = _cli(db, env, "generate", "--resume", str(job_id), "--json")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["status"] == "done" and summary["items"]["succeeded"] == N

        resent = [b for b in srv.requests[sent_before:] if _messages_key(b["messages"]) in answered]
        assert resent == [], f"{len(resent)} answered calls were sent again"
        assert len(srv.requests) - sent_before > 0          # the rest of the job did run

    store = open_store(db, read_only=True)
    blocks = json.loads(store.scalar("SELECT params FROM jobs"))["pool_snapshots"]
    assert {k: blocks[k] for k in blocks_before} == blocks_before   # ... and resume reused those snapshots
    assert len(blocks) == N // 8
    per_item = store.rows("SELECT i.item_key, count(g.id) AS n FROM job_items i LEFT JOIN generations g "
                          "ON g.job_item_id = i.id GROUP BY 1")
    assert len(per_item) == N and all(r["n"] == 1 for r in per_item)
    assert store.scalar("SELECT count(*) FROM generations") == N
    assert store.scalar("SELECT count(*) FROM (SELECT generation_id FROM judgments GROUP BY 1 HAVING count(*) > 1)") == 0
    # every successful payload was answered exactly once over both runs
    assert store.scalar("SELECT count(*) FROM (SELECT payload_hash FROM llm_calls WHERE error IS NULL "
                        "GROUP BY 1 HAVING count(*) > 1)") == 0
    store.close()
