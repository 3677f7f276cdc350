#!/usr/bin/env python3
"""The CLI's start-up against `python -c "import click"`, measured in the same run.

Each round starts, in turn, the yardstick (`python -c "import click"`) and every CLI
command below as a whole process (interpreter start, imports, argument parsing, exit),
and takes the ratio to the yardstick of that round, so a machine that speeds up or slows
down during the run moves both sides.  Prints the median and range of each wall time and
ratio.  Issue 13's target: `camrelay --help` (and a command that only talks HTTP) within
2.5x of the yardstick.

    .venv/bin/python scripts/bench/cli_start.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "camrelay --help": [str(BIN / "camrelay"), "--help"],
    "camrelay camera list --help": [str(BIN / "camrelay"), "camera", "list", "--help"],
    # talks HTTP: nobody listens on port 9, so it fails at once with one line
    "camrelay camera list (no server)": [str(BIN / "camrelay"), "camera", "list",
                                         "--url", "http://127.0.0.1:9", "--token", "x"],
}
YARDSTICK = [sys.executable, "-c", "import click"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def spread(values: list[float], unit: str = "") -> str:
    return (f"{statistics.median(values):.3f}{unit} "
            f"({min(values):.3f}-{max(values):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for argv in [YARDSTICK, *COMMANDS.values()]:  # warm the page cache
        wall(argv)
    base: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    ratios: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        yardstick = wall(YARDSTICK)
        base.append(yardstick)
        for name, argv in COMMANDS.items():
            t = wall(argv)
            times[name].append(t)
            ratios[name].append(t / yardstick)
    print(f"{args.rounds} rounds; wall seconds median (min-max)")
    yardstick_name = 'python -c "import click"'
    print(f"  {yardstick_name:34} {spread(base, ' s')}")
    for name in COMMANDS:
        print(f"  {name:34} {spread(times[name], ' s')}   ratio {spread(ratios[name], 'x')}")


if __name__ == "__main__":
    main()
