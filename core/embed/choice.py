"""Which backend embeds by default (``--backend auto``), and why.

The fast backend (ONNX Runtime, int8 weights) is chosen wherever it agrees with PyTorch (mean
cosine >= AGREEMENT_MIN) and PyTorch is not measurably faster (by more than SPEED_MARGIN); else
PyTorch. With a GPU, PyTorch float16 on the GPU. The measurement is made once per model (and per
torch / onnxruntime version), on PROBE_TEXTS real functions of the running Python's standard
library, in MEASURE_ROUNDS interleaved rounds timed by wall and CPU clock (`measure_agreement`),
and remembered in ``$SHOAL_CACHE_DIR/backend-choice.json``, so later runs decide at once.

The static backend (a model2vec table distilled from the same model, core.embed.static) is
chosen by ``auto`` on a CPU when MiniLM (whichever of fast / torch auto would use) would take
more than STATIC_AFTER_SECONDS for the texts it still has to embed, at the speed measured above:
bench/bench_static.py measures what that costs in agreement (README, Performance), and the
reason says it. With a GPU, MiniLM (float16) is fast enough and stays the default.
"""
from __future__ import annotations

import ast
import json
import os
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.embed.device import is_gpu, resolve_device
from core.embed.model import BACKENDS, _model_source, encode, load_model, model_key, snippet_text
from core.errors import ShoalError
from core.paths import cache_dir

AGREEMENT_MIN = 0.99
SPEED_MARGIN = 0.05  # PyTorch must be > 5 % faster to win over an agreeing fast backend
MEASURE_ROUNDS = 3
MEASURE_METHOD = 2  # 2: speed from wall and CPU time, median of rounds (records of 1 are measured again)
PROBE_TEXTS = 32
STATIC_AFTER_SECONDS = 3600  # auto goes static only when MiniLM would embed for longer than this (README: why)
STATIC_MIN_TEXTS = 2_000     # and never for fewer texts than this, whatever the measured speed
# what bench/bench_static.py measured (2,466 stdlib + site-packages functions, MiniLM int8 as reference)
STATIC_AGREEMENT = ("it agrees with MiniLM only in part: 29% of MiniLM's 10 nearest neighbours, and k-center "
                    "picks no better than random ones in MiniLM's space at k >= 100")
PROBE_MODULES = ("textwrap.py", "shlex.py", "fnmatch.py", "calendar.py", "heapq.py", "difflib.py",
                 "statistics.py", "ipaddress.py", "csv.py", "pprint.py", "base64.py", "bisect.py")


@dataclass
class BackendChoice:
    requested: str
    backend: str           # torch | fast | static
    device: str            # cpu | cuda[:N]
    reason: str            # one sentence a page or the CLI can show
    measurement: dict | None = None

    def summary(self) -> dict:
        return asdict(self)


def probe_texts(n: int = PROBE_TEXTS) -> list[str]:
    """`n` real functions of this interpreter's standard library, as embedded texts (deterministic)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    for mod in PROBE_MODULES:
        try:
            src = (root / mod).read_text(encoding="utf-8")
        except OSError:
            continue
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef):
                code = ast.get_source_segment(src, node) or ""
                if 80 <= len(code) <= 2500:
                    texts.append(snippet_text(node.name, ast.get_docstring(node), code))
                    if len(texts) >= n:
                        return texts
    return texts


def _memory_path() -> Path:
    return cache_dir() / "backend-choice.json"


def _memory_key(model: str | None) -> str:
    import onnxruntime
    import torch
    return f"{model_key(model)}|{_model_source(model)}|torch {torch.__version__}|onnxruntime {onnxruntime.__version__}"


def _read_memory() -> dict:
    try:
        return json.loads(_memory_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _remember(key: str, record: dict) -> None:
    path = _memory_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    memory = _read_memory()
    memory[key] = record
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memory, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def measure_agreement(model: str | None, rounds: int = MEASURE_ROUNDS) -> dict:
    """Cosine of fast vs torch vectors and both speeds on the probe texts (`rounds` interleaved rounds).

    ``speed_ratio`` (fast over torch, > 1: fast is faster) is the larger of the median per-round
    ratio of wall time and that of this process's CPU time: on a shared machine other processes'
    load swings wall time from round to round, while CPU time counts only the work done here, so
    PyTorch is taken as faster only when both say so.
    """
    texts = probe_texts()
    models = {b: load_model(model, b) for b in ("torch", "fast")}
    for m in models.values():
        encode(m, texts[:4])  # warm-up
    wall: dict[str, list[float]] = {"torch": [], "fast": []}
    cpu: dict[str, list[float]] = {"torch": [], "fast": []}
    vectors = {}
    for _ in range(rounds):
        for b, m in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            vectors[b] = encode(m, texts, 16)
            wall[b].append(time.perf_counter() - t0)
            cpu[b].append(max(time.process_time() - c0, 1e-9))
    a, f = vectors["torch"], vectors["fast"]
    cos = (a * f).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(f, axis=1), 1e-12)
    torch_rate, fast_rate = (len(texts) / min(wall[b]) for b in ("torch", "fast"))
    wall_ratio = float(np.median([t / f for t, f in zip(wall["torch"], wall["fast"])]))
    cpu_ratio = float(np.median([t / f for t, f in zip(cpu["torch"], cpu["fast"])]))
    return {"cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
            "torch_per_s": round(torch_rate, 1), "fast_per_s": round(fast_rate, 1),
            "speed_ratio": round(max(wall_ratio, cpu_ratio), 3), "wall_speed_ratio": round(wall_ratio, 3),
            "cpu_speed_ratio": round(cpu_ratio, 3), "rounds": rounds, "n_texts": len(texts),
            "method": MEASURE_METHOD, "load_avg_1m": round(os.getloadavg()[0], 2),
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def backend_agreement(model: str | None, refresh: bool = False) -> dict:
    """The remembered measurement for this model, measuring it first if there is none (or `refresh`,
    or it was made by an older way of measuring)."""
    key = _memory_key(model)
    record = None if refresh else _read_memory().get(key)
    if record is None or record.get("method") != MEASURE_METHOD:
        record = measure_agreement(model)
        _remember(key, record)
    return record


def remembered_agreement(model: str | None = None) -> dict | None:
    """The measurement if one was made already (never measures; cheap enough for a page)."""
    try:
        record = _read_memory().get(_memory_key(model))
    except Exception:  # noqa: BLE001 - a page asking must not fail on a missing optional dependency
        return None
    return record if record and record.get("method") == MEASURE_METHOD else None


def _verdict(m: dict) -> tuple[str, str]:
    agrees = m["cosine_mean"] >= AGREEMENT_MIN
    torch_faster = m["speed_ratio"] < 1 - SPEED_MARGIN
    figures = (f"mean cosine {m['cosine_mean']:.3f} to PyTorch's vectors, "
               f"{m['fast_per_s']:.0f} vs {m['torch_per_s']:.0f} snippets/s ({m['speed_ratio']:.2f}x)")
    if agrees and not torch_faster:
        return "fast", f"fast (ONNX int8): it agrees with PyTorch and is not slower here ({figures})"
    why = "it does not agree closely enough" if not agrees else "PyTorch is faster here"
    return "torch", f"torch: the fast backend was not chosen because {why} ({figures})"


def _static_verdict(m: dict, chosen: str, n_to_embed: int | None) -> str | None:
    """The reason to embed statically instead of with `chosen` (fast / torch), or None."""
    if n_to_embed is None or n_to_embed < STATIC_MIN_TEXTS:
        return None
    rate = float(m.get(f"{chosen}_per_s") or 0)
    eta = n_to_embed / rate if rate > 0 else float("inf")
    if eta <= STATIC_AFTER_SECONDS:
        return None
    took = f"about {eta / 60:.0f} min" if eta < 5400 else f"about {eta / 3600:.1f} h"
    return (f"static (model2vec table distilled from the model): {n_to_embed:,} snippets would take {took} with "
            f"the {chosen} backend here ({rate:.0f} snippets/s measured), more than {STATIC_AFTER_SECONDS / 60:.0f} "
            f"min; static embeds thousands per second, but {STATIC_AGREEMENT} (bench_static). "
            f"Choose fast or torch for the model's own vectors")


def choose_backend(model: str | None = None, backend: str = "auto", device: str = "auto",
                   n_to_embed: int | None = None) -> BackendChoice:
    """The backend and device that embed, with the reason (measuring agreement once if needed).

    `n_to_embed`: how many texts the model (fast / torch) would still embed; None never picks static."""
    wanted = (backend or "auto").strip().lower()
    if wanted not in BACKENDS:
        raise ShoalError(f"Unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    if wanted == "static":
        return BackendChoice(wanted, "static", "cpu", "static: asked for (a model2vec table on the CPU)")
    dev = resolve_device(device)
    if is_gpu(dev):
        if wanted == "fast":
            raise ShoalError("The fast backend (ONNX int8) runs on the CPU: use --backend torch or auto "
                             "with a GPU, or --device cpu.")
        return BackendChoice(wanted, "torch", dev, f"torch float16 on {dev}: a GPU is in use")
    if wanted != "auto":
        return BackendChoice(wanted, wanted, dev, f"{wanted}: asked for")
    try:
        m = backend_agreement(model)
    except ShoalError as exc:  # e.g. a model the fast backend cannot run
        return BackendChoice("auto", "torch", dev, f"torch: the fast backend cannot run this model ({exc})")
    except ImportError as exc:
        return BackendChoice("auto", "torch", dev, f"torch: the fast backend is not installed ({exc})")
    chosen, reason = _verdict(m)
    static = _static_verdict(m, chosen, n_to_embed)
    if static:
        return BackendChoice("auto", "static", "cpu", static, m)
    return BackendChoice("auto", chosen, dev, reason, m)


def default_backend_note(model: str | None = None) -> str:
    """One sentence for the Map page: what `auto` uses for this model and why (never measures)."""
    if resolve_device("auto") != "cpu":
        return "Backend auto: PyTorch float16 on the GPU."
    m = remembered_agreement(model)
    if m is None:
        return ("Backend auto: the first embedding measures once whether the fast ONNX int8 backend "
                f"agrees with PyTorch (mean cosine >= {AGREEMENT_MIN}) and is not slower, and uses it if so.")
    return ("Backend auto uses " + _verdict(m)[1] + f"; static (a model2vec table distilled from the model) "
            f"when that would take more than {STATIC_AFTER_SECONDS / 60:.0f} min for what is left to embed "
            f"(about {STATIC_AFTER_SECONDS * m[_verdict(m)[0] + '_per_s']:,.0f} snippets here).")
