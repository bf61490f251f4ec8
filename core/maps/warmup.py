"""Once per machine, at set-up: what a first map would otherwise do before it embeds anything.

Exports the default embedding model to int8 ONNX and measures whether it agrees with PyTorch (the
`auto` backend choice, remembered under $SHOAL_CACHE_DIR), distils the static backend's table
(core.embed.static, same cache), and compiles UMAP's numba kernels into
their on-disk cache. Both happen once per machine anyway; doing them while installing keeps them out
of the demo's first "Embed and build map".
"""
from __future__ import annotations

import time

import numpy as np

from core.errors import ShoalError


def warm_up() -> dict:
    """Seconds each step took and the backend `auto` will use."""
    from core.embed.choice import choose_backend
    from core.embed.model import load_model
    from core.maps.build import project_2d

    t0 = time.perf_counter()
    choice = choose_backend(None, "auto")
    t1 = time.perf_counter()
    try:
        load_model(None, "static")
    except ShoalError:   # e.g. model2vec not installed yet: the first static embedding distils instead
        pass
    ts = time.perf_counter()
    project_2d(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))
    t2 = time.perf_counter()
    return {"backend": choice.backend, "reason": choice.reason, "backend_seconds": round(t1 - t0, 1),
            "static_seconds": round(ts - t1, 1), "umap_seconds": round(t2 - ts, 1)}
