"""Generation-job helpers: profiles that point both roles at a fake server, and checks on a job's rows."""
from __future__ import annotations

from core.config import Profile
from tests.support.openai_server import FakeOpenAIServer


def profiles(server: FakeOpenAIServer, timeout_s: float = 10.0) -> dict:
    return {role: Profile(role=role, base_url=server.base_url, model="fake-model", timeout_s=timeout_s,
                          max_tokens=256, temperature=1.0 if role == "generator" else 0.0)
            for role in ("generator", "judge")}


def gens_per_item(store, job_id):
    return store.rows("SELECT i.item_key, count(g.id) AS n FROM job_items i LEFT JOIN generations g "
                      "ON g.job_item_id = i.id WHERE i.job_id = ? GROUP BY 1", [job_id])


# the batch test server's timing (validate, run, finish) and the poll interval that keeps batch tests fast
FAST = (0.02, 0.1, 0.02)
POLL = 0.02


def one_generation_per_item(store, job) -> bool:
    rows = store.rows("SELECT i.id, count(g.id) AS n FROM job_items i LEFT JOIN generations g ON g.job_item_id = i.id "
                      "WHERE i.job_id = ? GROUP BY 1", [job])
    return len(rows) > 0 and all(r["n"] == 1 for r in rows)


def no_payload_answered_twice(store) -> bool:
    return store.scalar("SELECT count(*) FROM (SELECT payload_hash FROM llm_calls WHERE error IS NULL "
                        "GROUP BY 1 HAVING count(*) > 1)") == 0


def as_online_job_again(store) -> None:
    """Forget what a batch-mode job generated and make it an online job, to rerun it: its calls stay
    in the call log, so a rerun is answered from there."""
    store.execute("DELETE FROM judgments")
    store.execute("DELETE FROM generations")
    store.execute("UPDATE job_items SET status = 'pending', generation_id = NULL")
    store.execute("UPDATE jobs SET params = json_merge_patch(params, '{\"batch\": false}')")
