"""The team's shared folder (MBPP for the decontamination tests) sits beside the checkout; a clone
elsewhere finds it through SHOAL_SHARED_DIR or at its usual place."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SHARED_PLACES = [Path(p) for p in (os.environ.get("SHOAL_SHARED_DIR"), ROOT.parent / "shared", "/work/shared") if p]
SHARED = next((p for p in _SHARED_PLACES if p.is_dir()), _SHARED_PLACES[0])
