"""The Corpus page's Duplicates tile: copies inside the corpus, counted once however often a source
is ingested; records a re-ingest finds already present are counted apart."""
from __future__ import annotations

from core.ingest import ingest_sources
from core.ingest.browse import overview
from tests.support.ingest_data import csn_record, jsonl


def test_reingesting_a_source_does_not_add_up_its_duplicates(store, tmp_path):
    f = tmp_path / "with-copies.jsonl"
    a, b = csn_record(1), csn_record(2, code="def twice(x):\n    return [x, x] + [x for _ in range(2)]\n")
    f.write_bytes(jsonl([a, b, a, a]))                       # two copies of the first record
    first = ingest_sources(store, [str(f)])
    assert (first.ingested, first.duplicates, first.already_present) == (2, 2, 0)
    assert overview(store)["duplicates"] == 2 and overview(store)["already_present"] == 0

    for _ in range(3):                                       # the same file again, three times
        again = ingest_sources(store, [str(f)])
        assert (again.ingested, again.duplicates, again.already_present) == (0, 4, 2)
    stats = overview(store)
    assert stats["snippets"] == 2
    assert stats["duplicates"] == 2                          # not 2 + 3 * 4
    assert stats["already_present"] == 2                     # the newest ingest found both already there
    assert again.to_json()["already_present"] == 2

    g = tmp_path / "other.jsonl"                             # a new source that shares one record
    g.write_bytes(jsonl([a, csn_record(3, code="def thrice(x):\n    return [x, x, x] + [x for _ in range(3)]\n")]))
    third = ingest_sources(store, [str(g)])
    assert (third.ingested, third.already_present) == (1, 1)
    assert overview(store)["duplicates"] == 2 and overview(store)["already_present"] == 1
