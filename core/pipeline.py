"""Where a database is in the pipeline: one entry per stage, in order, for the home page."""
from __future__ import annotations

from core.store import Store

_STAGES = [
    ("Corpus", "SELECT count(*) FROM snippets", "snippets ingested",
     "Add a corpus (or the built-in demo) on the Corpus page.", "pages/1_Corpus.py"),
    ("Map", "SELECT count(*) FROM maps", "maps built",
     "Embed the corpus and build its map on the Map page.", "pages/2_Map.py"),
    ("Selection", "SELECT count(*) FROM selections", "selections saved",
     "Pick the most diverse snippets with k-center greedy on the Map page.", "pages/2_Map.py"),
    ("Generate", "SELECT count(*) FROM generations", "examples generated",
     "Generate and judge instruction examples on the Generate page.", "pages/3_Generate.py"),
    ("Review", "SELECT count(*) FROM reviews WHERE verdict IN ('accepted', 'rejected')", "examples reviewed",
     "Accept, edit or reject examples on the Review page.", "pages/4_Review.py"),
    ("Export", "SELECT count(*) FROM exports", "exports written",
     "Check and export the accepted set on the Dataset page.", "pages/5_Dataset.py"),
]


def pipeline_status(store: Store) -> list[dict]:
    out = []
    for title, sql, help_, next_, page in _STAGES:
        n = int(store.scalar(sql) or 0)
        out.append({"title": title, "count": n, "help": help_, "done": n > 0, "next": next_,
                    "page": page, "page_title": page.split("_", 1)[1].removesuffix(".py")})
    return out
