"""What every benchmark needs of its processes: CPU time and resident memory of a
process tree (read from /proc), ending a child, and the median (min–max) of a figure.

``cpu_seconds(pid)``: utime + stime of the process and all its descendants (the
process-level /proc/<pid>/stat counters include every thread).  ``rss_bytes(pid)``:
VmRSS summed over the same tree.  A descendant that exits between two samples takes
its time with it, so the harness's relays keep their workers for the whole window.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def cpu_seconds(pid: int) -> float:
    return sum(cpu_ticks(p) for p in tree(pid)) / TICK


def rss_bytes(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def end_child(proc: subprocess.Popen[Any], timeout: float, *, term: bool = False) -> int | None:
    """Ask ``proc`` to end — SIGTERM with ``term``, else by closing its stdin — wait up to
    ``timeout`` seconds, then kill it.  Its exit code; None when it had to be killed."""
    if proc.poll() is None:
        if term:
            proc.send_signal(signal.SIGTERM)
        elif proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def med(xs: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min–max)``; one value alone; ``n/a`` for none."""
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"
