"""A single-threaded process that runs an evaluation's programs in the sandbox, one at a time.

Started by `core.evaluate.runner` (`python -m core.evaluate.sandbox_worker`): one JSON line in
(`program`, `timeout`, `memory_mb`), one JSON line out (the `SandboxResult`'s fields). The sandbox
forks with Python code to run before exec; from a process with many threads (the evaluation's event
loop, its call-log writer, a Streamlit server) such a fork can deadlock in the child and never
return, so the forks happen here, where there is one thread.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict


def serve() -> None:
    from core.sandbox.isolation import run_python
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        result = run_python(req["program"], req["timeout"], req["memory_mb"])
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
