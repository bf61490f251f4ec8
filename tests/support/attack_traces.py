"""What the attack tests plant and look for: the canary key, and the processes an attack left running."""
from __future__ import annotations

import os
from pathlib import Path

CANARY = "sk-proj-CANARY7f3a9c2e51b84d06a1c3e5f7092b4d68aa01"
MARKERS = ("shoalsurv", "shoalbomb", "31.337")


def survivors() -> list[str]:
    """Processes on this machine that an attack started (they carry one of MARKERS)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm in MARKERS or "31.337" in cmdline:
            found.append(f"{pid} {comm} {cmdline}")
    return found
