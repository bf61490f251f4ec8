"""Two exports of one reviewed set, with the decisions and edits between them that a version diff must show."""
from __future__ import annotations

import json
import shutil

from core import review
from core.dataset.export import export_dataset
from tests.support.fake_generations import fill_fake

E1 = "def first_edit(x):\n    return x + 1\n"
E2 = "def first_edit(x):\n    return x + 2\n"
NEW_INSTRUCTION = "Write a Python function that doubles every number in a list (edited)."


def _decide(store, gid: int, verdict: str, **kw) -> None:
    review.decide(store, gid, verdict, reviewer="ann",
                  expected_version=review.version_for(store, gid, "ann"), **kw)


def two_versions(store, tmp_path) -> dict:
    """Export 1: six accepted code_generation examples, #1 of them already edited (E1). Then: two more
    accepted, #0 rejected, #1 edited again (E2), #2's instruction edited, #3 decided again with a note
    only (its content is unchanged). Export 2, in another format, with the first folder deleted."""
    fill_fake(store, 60, seed=3, with_map=False, with_selection=False)
    gens = [int(g) for g, in store.execute(
        "SELECT id FROM generations WHERE task = 'code_generation' ORDER BY id").fetchall()]
    assert len(gens) >= 8
    g = gens[:8]
    for gid in g[:6]:
        _decide(store, gid, "accepted")
    _decide(store, g[1], "accepted", edited_fields={"solution": E1})
    v1 = export_dataset(store, "alpaca", tmp_path / "v1", name="First cut")
    shutil.rmtree(tmp_path / "v1")                      # the diff needs the database only
    for gid in g[6:8]:
        _decide(store, gid, "accepted")
    _decide(store, g[0], "rejected")
    _decide(store, g[1], "accepted", edited_fields={"solution": E2})
    original_instruction = json.loads(store.scalar("SELECT fields FROM generations WHERE id = ?", [g[2]]))["instruction"]
    _decide(store, g[2], "accepted", edited_fields={"instruction": NEW_INSTRUCTION})
    _decide(store, g[3], "accepted", note="looked again, fine")
    v2 = export_dataset(store, "messages", tmp_path / "v2", name="Second cut")
    return {"g": g, "v1": v1.export_id, "v2": v2.export_id, "instruction": original_instruction}
