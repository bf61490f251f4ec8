"""core.background: tasks run in worker threads with their state in DuckDB; cancel; stale rows."""
from __future__ import annotations

import threading
import time

import pytest

from core import background as bg
from core.errors import ShoalError
from core.progress import check_cancel

KIND = bg.TaskKind("test_work", "A test run", cancelled="Cancelled: kept what was done.", failure_prefix="Boom: ")


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_progress_and_result_are_in_the_table_and_a_second_run_is_refused(store):
    release = threading.Event()

    def work(ctx):
        ctx.stage("counting")
        ctx.progress(3, 10, "three done")
        release.wait(10)
        ctx.progress(10, 10, "all done")
        return {"summary": "Counted 10.", "n": 10}

    task = bg.start_task(store, KIND, work, label="ten things", describe=lambda r: r)
    assert _until(lambda: (bg.task_record(store, task.id).done == 3))
    rec = bg.latest_task(store, KIND.name)
    assert rec.running and (rec.stage, rec.total, rec.message, rec.label) == ("counting", 10, "three done", "ten things")
    assert [t.id for t in bg.running_tasks(store)] == [task.id] and bg.is_running(store, KIND.name)
    with pytest.raises(ShoalError, match="A test run is already running"):
        bg.start_task(store, KIND, work)
    release.set()
    assert task.wait(10)
    rec = bg.task_record(store, task.id)
    assert (rec.status, rec.fraction, rec.result, rec.error) == ("done", 1.0, {"summary": "Counted 10.", "n": 10}, None)
    assert task.result == {"summary": "Counted 10.", "n": 10} and not bg.is_running(store, KIND.name)
    assert bg.local_task(store, task.id) is task and bg.list_tasks(store)[0].id == task.id


def test_cancel_through_the_table_stops_the_work(store):
    def work(ctx):
        for i in range(1000):
            check_cancel(ctx.cancel)
            ctx.progress(i, 1000, "working")
            time.sleep(0.01)
        return {}

    task = bg.start_task(store, KIND, work)
    assert _until(lambda: bg.task_record(store, task.id).done > 0)
    # as another process would: only the row changes; the flusher turns it into the cancel event
    store.write(lambda cur: cur.execute("UPDATE background_tasks SET cancel_requested = true WHERE id = ?",
                                        [task.id]))
    assert task.wait(10)
    rec = bg.task_record(store, task.id)
    assert (rec.status, rec.error) == ("cancelled", "Cancelled: kept what was done.") and rec.done < 999


def test_cancel_task_and_errors_are_recorded(store):
    started = threading.Event()

    def slow(ctx):
        started.set()
        while True:
            check_cancel(ctx.cancel)
            time.sleep(0.01)

    task = bg.start_task(store, KIND, slow)
    assert started.wait(10)
    bg.cancel_task(store, task.id)
    assert task.wait(10) and bg.task_record(store, task.id).status == "cancelled"

    def broken(ctx):
        raise ValueError("no such thing")

    failed = bg.start_task(store, KIND, broken)
    assert failed.wait(10)
    rec = bg.task_record(store, failed.id)
    assert (rec.status, rec.error) == ("failed", "Boom: ValueError: no such thing") == ("failed", failed.error)

    def refused(ctx):
        raise ShoalError("Pick at least one source.")

    shoal = bg.start_task(store, KIND, refused)
    assert shoal.wait(10) and bg.task_record(store, shoal.id).error == "Pick at least one source."


def test_the_heartbeat_goes_on_while_the_work_reports_nothing(store, monkeypatch):
    monkeypatch.setattr(bg, "FLUSH_EVERY", 0.05)
    release = threading.Event()
    task = bg.start_task(store, KIND, lambda ctx: release.wait(10))
    first = store.scalar("SELECT heartbeat FROM background_tasks WHERE id = ?", [task.id])
    assert _until(lambda: store.scalar("SELECT heartbeat FROM background_tasks WHERE id = ?", [task.id]) > first)
    release.set()
    assert task.wait(10)


def test_rows_left_running_by_a_dead_process_are_stale_and_marked_interrupted(store):
    old = time.time() - bg.STALE_AFTER - 5
    dead, ours = [store.write(lambda cur, owner=owner, beat=beat: cur.execute(
        "INSERT INTO background_tasks(kind, owner, heartbeat) VALUES (?, ?, ?) RETURNING id",
        [KIND.name, owner, beat]).fetchone()[0])
        for owner, beat in (("elsewhere:1:dead", old), (bg.OWNER, time.time()))]
    alive_elsewhere = store.write(lambda cur: cur.execute(
        "INSERT INTO background_tasks(kind, owner, heartbeat) VALUES (?, 'elsewhere:2:alive', ?) RETURNING id",
        [KIND.name, time.time()]).fetchone()[0])
    # another process's row with a fresh heartbeat is running; an old heartbeat, or a row of this
    # process with no live thread behind it, is stale
    stale = {r.id: r.stale for r in bg.list_tasks(store)}
    assert stale == {dead: True, ours: True, alive_elsewhere: False}
    assert [r.id for r in bg.running_tasks(store)] == [alive_elsewhere]
    assert bg.task_record(store, dead).shown_status == "interrupted"
    assert bg.mark_interrupted(store) == 2
    rec = bg.task_record(store, dead)
    assert rec.status == "interrupted" and not rec.stale and "process running it stopped" in rec.error


def test_a_big_corpus_added_to_a_mapped_project_gets_a_first_look_of_the_new_snippets(store, monkeypatch):
    """233k snippets added to a mapped project used to wait hours for any map of them: now a first
    look (the mapped snippets plus a sample of the new ones) comes first, then the full map."""
    import core.maps.start as bw
    from core.embed.run import model_key
    from tests.support.snippets import stdlib_snippets
    snips = stdlib_snippets(90)
    store.insert_df("snippets", snips.iloc[:30])
    first = bw.start_embed_and_map(store, None, "torch", 32, 3, "kmeans", first_map_at=0)
    first.wait()
    assert first.error is None
    store.insert_df("snippets", snips.iloc[30:])                      # 60 new: more than twice a sample of 10
    key = model_key(None, "torch")
    new_ids = set(snips["id"].iloc[30:])
    sample = bw.first_look_ids(store, 10, key)
    assert len(sample) == 10 and set(sample) <= new_ids                 # drawn from what is not embedded yet
    assert bw.needs_first_look(store, key, 10)
    run = bw.start_embed_and_map(store, None, "torch", 32, 3, "kmeans", first_map_at=10)
    run.wait()
    assert run.error is None, run.error
    maps = store.rows("SELECT name, n_points FROM maps ORDER BY id")
    assert [m["n_points"] for m in maps] == [30, 40, 90]
    assert maps[1]["name"] == "first look (10 sampled new snippets)"
    assert run.result["first_look_map_id"] is not None
