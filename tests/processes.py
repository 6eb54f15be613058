"""Processes seen from outside, through /proc (Linux): which are children of which, whether one
is computing, how much memory it holds. For tests of worker processes; nothing here times
anything beyond waiting, bounded, for a condition."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


def wait_until(condition, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def resident_mb(process) -> float:
    try:
        with open(f"/proc/{process.pid}/status") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS"))
    except OSError:
        return 0.0


def busy(process) -> bool:
    """Whether a worker process is using CPU now (an idle worker sleeps on its pipe)."""
    try:
        with open(f"/proc/{process.pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "R"
    except OSError:
        return False


def cpu_seconds(process) -> float:
    try:
        with open(f"/proc/{process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # user + system time


@dataclass
class Child:
    pid: int


def children_of(pid: int) -> list[Child]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(Child(int(stat.parent.name)))
    return found


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
