"""run_job must also work from a thread that already runs an event loop (Jupyter, Playwright's sync API)."""
import asyncio

from core.generate.jobs import create_job, run_job
from tests.support.jobs import gens_per_item, profiles
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


def test_run_job_inside_a_running_event_loop(store):
    ids = add_snippets(store, 4)
    with FakeOpenAIServer(shoal_responder) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", concurrency=2)

        async def caller():
            return run_job(store, job)  # blocking call from inside a coroutine

        summary = asyncio.run(caller())
    assert summary["items"]["succeeded"] == 4
    assert [r["n"] for r in gens_per_item(store, job)] == [1, 1, 1, 1]
