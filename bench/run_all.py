"""`make bench`: run every bench/bench_*.py in turn and print the ratios they wrote.

Each script measures Shoal and its baseline in the same run and writes
bench/results/<name>.json; this runner only sequences them and summarises. Every
bench/bench_<name>.py is found by name (`python -m bench.run_all scale` runs only the 1M bench,
bench_scale.py, which takes 20-40 minutes on a quiet 2-core machine).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    only = set(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem.removeprefix("bench_") in only)
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        t0 = time.time()
        rc = subprocess.call([sys.executable, "-m", f"bench.{script.stem}"], cwd=str(HERE.parent))
        print(f"--- {script.stem}: exit {rc} in {time.time() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script.stem)
    print("\n=== summary (bench/results/*.json) ===")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        ratios = {k: v for k, v in data.items() if "ratio" in k or k in ("target", "meets_target")}
        print(f"{path.stem:24s} {json.dumps(ratios, default=str)[:300]}")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
