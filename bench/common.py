"""Small helpers shared by the benchmarks: /proc readings, summaries (the fake clock is the
test kit's)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """A benchmark could not measure what it should (a process failed, an answer was wrong)."""


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process, in kB, from ``/proc/PID/status``."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (all its threads), from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait(pid: int | str = "self") -> float:
    """Seconds the threads of a process have spent runnable but waiting for a core
    (``/proc/PID/task/*/schedstat``): on a shared machine, time other processes took."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text(encoding="ascii").split()[1])
        except (OSError, IndexError, ValueError):  # a thread that just ended
            continue
    return waited / 1e9


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise BenchError("no values to take a percentile of")
    rank = max(1, round(share / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full.

    System-wide (``TcpExt: ListenOverflows`` in ``/proc/net/netstat``); None if unreadable.
    """
    try:
        lines = Path("/proc/net/netstat").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            found = dict(zip(names.split()[1:], values.split()[1:]))
            return int(found["ListenOverflows"]) if "ListenOverflows" in found else None
    return None
