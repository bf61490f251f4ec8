"""The Dataset page's Versions section: every export listed, the two newest compared by default (counts
and a table of the added, removed and edited examples), and an export made before versions were
recorded refused with a message that says to export again."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store import open_store
from tests.support.dataset_versions import E1, E2, two_versions

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Dataset.py")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _table(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_versions_table_and_the_diff_of_the_two_newest(tmp_path):
    store = open_store(os.environ["SHOAL_DB"])
    old = int(store.scalar("INSERT INTO exports(format, path, n_rows, params, card) "   # as the old code left it
                           "VALUES ('alpaca', '/old/export', 3, '{}', '# Old set') RETURNING id"))
    s = two_versions(store, tmp_path)
    g = s["g"]
    store.checkpoint()
    store.close()

    at = _run(AppTest.from_file(PAGE, default_timeout=300))
    versions = _table(at, "comparable")
    assert versions["version"].tolist() == [s["v2"], s["v1"], old]
    assert versions["name"].tolist() == ["Second cut", "First cut", "Old set"]
    assert versions["examples"].tolist() == [7, 6, 3]
    assert versions["comparable"].tolist()[2].startswith("no")
    assert (at.selectbox(key="ds_ver_a").value, at.selectbox(key="ds_ver_b").value) == (s["v1"], s["v2"])

    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Added"], metrics["Removed"], metrics["Edited"], metrics["Unchanged"]) == ("2", "1", "2", "3")
    diff = _table(at, "change")
    assert sorted(zip(diff["example"], diff["change"])) == sorted(
        [(g[6], "added"), (g[7], "added"), (g[0], "removed"), (g[1], "edited"), (g[2], "edited")])
    edit = diff[diff["example"] == g[1]].iloc[0]
    assert (edit["field"], edit["before"], edit["after"]) == ("output", E1, E2)

    # the export made before versions were recorded cannot be compared: the page says why and what to do
    at.selectbox(key="ds_ver_a").set_value(old)
    _run(at)
    assert any(f"#{old} was made before versions were recorded; export again" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert "Added" not in {m.label for m in at.metric}
