"""Per-example cost of the bubblewrap sandbox vs the runner it replaced; writes bench/results/sandbox.json.

The old runner (audit hook + `unshare` namespaces + rlimits) is not in the product any more: its
source is taken from git (`git show <rev>:core/sandbox/isolation.py`, by default the newest commit whose sandbox has
no bwrap) into a temporary module, so the baseline is today's code on the same examples, on
the same machine, in the same run. Both run the same Python examples (MBPP-style solution +
asserts) and C++ examples (compile + run), interleaved A B A B so load changes hit both alike, with
2 workers as `shoal check --exec` does. The figure is the ratio of median per-example wall time.

    python -m bench.bench_sandbox [--examples 40] [--rounds 3] [--rev auto]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import write_result

ROOT = Path(__file__).resolve().parents[1]


def _show(rev: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:core/sandbox/isolation.py"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def last_rev_before_bwrap() -> str:
    """The newest commit whose core/sandbox/isolation.py is still the audit-hook runner."""
    revs = subprocess.run(["git", "log", "--format=%H", "--", "core/sandbox/isolation.py"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split()
    return next(r for r in revs if "bwrap" not in _show(r))


def old_runner(rev: str):
    """The sandbox module as it was at `rev`, loaded from a temporary file."""
    rev = last_rev_before_bwrap() if rev == "auto" else rev
    src = _show(rev)
    if "bwrap" in src:
        raise SystemExit(f"{rev}:core/sandbox/isolation.py is already the bubblewrap sandbox; pass --rev <older commit>")
    path = Path(tempfile.mkdtemp(prefix="shoal-bench-")) / "old_sandbox.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_sandbox", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_sandbox"] = mod
    spec.loader.exec_module(mod)
    return mod


def python_examples(n: int) -> list[str]:
    out = []
    for i in range(n):
        out.append(f"def f{i}(xs):\n    total = 0\n    for x in xs:\n        total += x * {i % 7 + 1}\n    return total\n\n"
                   f"assert f{i}([1, 2, 3]) == {6 * (i % 7 + 1)}\nassert f{i}([]) == 0\n")
    return out


def cpp_example(i: int) -> tuple[dict, str]:
    src = (f"#include <cassert>\n#include <vector>\nint f(const std::vector<int>& v) {{ int t = 0; for (int x : v) "
           f"t += x * {i % 5 + 1}; return t; }}\nint main() {{ assert(f({{1, 2, 3}}) == {6 * (i % 5 + 1)}); return 0; }}\n")
    return {"program.cpp": src}, src


def run_all(fn, items, workers: int = 2) -> tuple[float, list]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(fn, items))
    return time.perf_counter() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--cpp", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rev", default="auto", help="the baseline's commit (default: the last one before bubblewrap)")
    args = ap.parse_args()
    from core.sandbox import isolation as new
    from core.sandbox.languages import COMPILE_MEMORY_MB, COMPILE_TIMEOUT, toolchain_roots
    old = old_runner(args.rev)
    if new.sandbox_problem():
        raise SystemExit(new.sandbox_problem())
    py = python_examples(args.examples)
    times: dict[str, list[float]] = {"old_python": [], "new_python": [], "old_cpp": [], "new_cpp": []}
    statuses: dict[str, set] = {k: set() for k in times}

    def cpp_steps(mod):
        return [mod.Step(("g++", "-std=c++17", "-O1", "-pipe", "-w", "-o", "program", "program.cpp"), "compile",
                         COMPILE_TIMEOUT, COMPILE_MEMORY_MB, "as"), mod.Step(("./program",), "run", 10, 512, "as")]

    def cpp_new(i):
        return new.run_program(cpp_example(i)[0], cpp_steps(new), "cpp", toolchain_roots())

    def cpp_old(i):
        return old.run_program(cpp_example(i)[0], cpp_steps(old), "cpp")

    for _ in range(args.rounds):
        for name, fn, items in (("old_python", lambda c: old.run_python(c, 10), py),
                                ("new_python", lambda c: new.run_python(c, 10), py),
                                ("old_cpp", cpp_old, range(args.cpp)), ("new_cpp", cpp_new, range(args.cpp))):
            seconds, results = run_all(fn, items)
            times[name].append(seconds / len(items))
            statuses[name] |= {r.status for r in results}
    med = {k: statistics.median(v) for k, v in times.items()}
    write_result("sandbox", {
        "examples": {"python": args.examples, "cpp": args.cpp}, "rounds": args.rounds, "workers": 2,
        "baseline": f"{args.rev}:core/sandbox/isolation.py", "sandbox": new.sandbox_status(),
        "seconds_per_example": {k: round(v, 4) for k, v in med.items()},
        "ratio_python": round(med["new_python"] / med["old_python"], 3),
        "ratio_cpp": round(med["new_cpp"] / med["old_cpp"], 3),
        "statuses": {k: sorted(v) for k, v in statuses.items()},
    })


if __name__ == "__main__":
    main()
