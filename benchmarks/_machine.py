"""Machine-state helpers shared by the benchmark scripts: how busy the CPUs were, so a timing
taken on a loaded machine is flagged (a second torch process on 2 cores inflates timings 5-20x)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat; None where unavailable)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def load_note() -> str:
    """CPU use by other processes just before the benchmark, and the 1-minute load average.

    On a small machine another torch process (tests, another run) inflates timings many
    times over, because both oversubscribe the cores with torch's threads."""
    busy, la = cpu_busy(), os.getloadavg()[0]
    note = f"cpu busy {busy:.0%} over 1 s, load average {la:.2f}" if busy is not None else f"load average {la:.2f}"
    if (busy is not None and busy > 0.25) or (busy is None and la > 0.5 * (os.cpu_count() or 1)):
        note += " -- BUSY MACHINE: other processes compete for the CPUs; timings are inflated"
    return note


class OtherCpu:
    """CPU time used by *other* processes between ``start()`` and ``share()``, as a share of
    all CPUs (from /proc/stat minus this process's own CPU time; None where unavailable)."""

    def start(self) -> "OtherCpu":
        self.t0, self.busy0, self.self0 = time.perf_counter(), self._busy(), self._self()
        return self

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return (sum(v) - v[3] - (v[4] if len(v) > 4 else 0)) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _self() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def share(self) -> float | None:
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        other = (busy - self.busy0) - (self._self() - self.self0)
        return max(0.0, other) / max(1e-9, wall * (os.cpu_count() or 1))


def other_note(share: float | None) -> str:
    if share is None:
        return "unknown"
    return f"{share:.0%} of all CPUs" + (" -- BUSY: timings are inflated" if share > 0.1 else "")


def write_json(path: str, result: dict) -> None:
    """Write the benchmark's figures as JSON and say where."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
