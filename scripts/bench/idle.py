#!/usr/bin/env python3
"""Issue 6: what 1 000 catalogued, unwatched cameras cost the real server.

    .venv/bin/python scripts/bench/idle.py [--cameras 1000] [--rounds 3] [--settle 10]
        [--window 30] [--json tests/.cache/bench/idle.json]

Needs root, like perf.py (it re-executes itself in the same loopback-only namespace).
Two stores are set up through the real CLI (camrelay_relay.build_store: ``camrelay init``,
``catalog import``, a viewer and its token): one with no camera, one with ``--cameras``
cameras, all at the camera simulator's RTSP URL (transport udp), so any pull would be a
PLAY at the simulator.  Each round starts ``camrelay serve`` on a copy of each store in
turn (the order alternates), waits ``--settle`` seconds after /healthz answers, then
measures over ``--window`` seconds: CPU of the server's whole process tree (utime + stime
from /proc, % of one core), RSS of the tree at the end, and every connection the server
opened to the simulator's RTSP port (TCP SYNs seen by a packet tap, tap.py: OPTIONS,
DESCRIBE and PLAY all need one) plus the PLAYs the simulator printed, from start to stop.
Then the catalogue listing is timed (``GET /api/v1/cameras?limit=1000`` as the
administrator and as the viewer, 5 times each, and ``camrelay camera list`` once).

Targets (issue 6): RSS growth over the empty store < 50 MB, CPU < 1 % of one core, no
upstream connection.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from camrelay_relay import Server, Store, build_store, cli
from perf import in_own_netns, tree_state
from procstat import cpu_seconds, med, rss_bytes, tree
from relays import free_port
from tap import TapProcess


@dataclass
class Life:
    cameras: int
    round: int
    startup_s: float = 0.0  # camrelay serve started -> /healthz answers
    cpu_pct: float = 0.0  # of one core, over the window
    rss_mb: float = 0.0
    rss_after_listing_mb: float = 0.0
    processes: int = 0
    threads: int = 0
    syns: int = 0  # TCP connections opened to the simulator's RTSP port
    plays: int = 0
    listing_admin_ms: list[float] = field(default_factory=list)
    listing_viewer_ms: list[float] = field(default_factory=list)
    listing_total: int | None = None
    listing_items: int | None = None
    cli_list_s: float | None = None


def threads_of(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def timed_get(url: str, token: str) -> tuple[float, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                               "Accept": "application/json"})
    t = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.loads(resp.read())
    return (time.monotonic() - t) * 1000, body


def run_life(store: Store, cameras: int, rnd: int, args: argparse.Namespace,
             sim: Any, log_dir: Path) -> Life:
    life = Life(cameras, rnd)
    tap = TapProcess(log_dir / f"idle-tap-{os.getpid()}.bin", syn_port=sim.port)
    plays0 = sim.play_count("/bench")
    data = store.copy()
    t = time.monotonic()
    with (log_dir / "camrelay-idle.log").open("ab") as log:
        server = Server(data, free_port(), log)
    try:
        life.startup_s = time.monotonic() - t
        time.sleep(args.settle)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.window)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        life.cpu_pct = (cpu1 - cpu0) * 100 / (t1 - t0)
        life.rss_mb = rss_bytes(server.pid) / 2**20
        life.processes = len(tree(server.pid))
        life.threads = threads_of(server.pid)
        url = f"{server.url}/api/v1/cameras?limit=1000"
        for _ in range(5):
            ms, page = timed_get(url, store.admin_token)
            life.listing_admin_ms.append(ms)
            life.listing_total, life.listing_items = int(page["total"]), len(page["items"])
            ms, _ = timed_get(url, store.viewer_token)
            life.listing_viewer_ms.append(ms)
        t = time.monotonic()
        cli("camera", "list", "--limit", "1000", "--json", url=server.url,
            token=store.viewer_token)
        life.cli_list_s = time.monotonic() - t
        life.rss_after_listing_mb = rss_bytes(server.pid) / 2**20
    finally:
        server.stop()
        summary, _ = tap.stop()
    life.syns = int(summary["records"])
    life.plays = sim.play_count("/bench") - plays0
    return life




def report(lives: list[Life], counts: list[int], header: str, stores: dict[int, Store]) -> str:
    lines = [header, ""]
    cols = " | ".join(f"{c} cameras" for c in counts)
    lines.append(f"| figure | unit | {cols} | difference (per round, median) |")
    lines.append("|---|---|" + "---|" * (len(counts) + 1))
    rounds = sorted({lf.round for lf in lives})

    def by(c: int, fn: Any) -> list[float]:
        return [float(fn(lf)) for lf in lives if lf.cameras == c]

    def diff(fn: Any, fmt: str) -> str:
        if len(counts) != 2:
            return ""
        out = []
        for r in rounds:
            a = [fn(lf) for lf in lives if lf.round == r and lf.cameras == counts[1]]
            b = [fn(lf) for lf in lives if lf.round == r and lf.cameras == counts[0]]
            if a and b:
                out.append(float(a[0]) - float(b[0]))
        return med(out, fmt)

    whole = "{:.0f}"
    rows: list[tuple[str, str, Any, str]] = [
        ("server CPU over the window (whole tree)", "% of one core", lambda lf: lf.cpu_pct,
         "{:.2f}"),
        ("RSS (whole tree), end of the window", "MB", lambda lf: lf.rss_mb, "{:.1f}"),
        ("RSS after the listings below", "MB", lambda lf: lf.rss_after_listing_mb, "{:.1f}"),
        ("processes", "count", lambda lf: lf.processes, whole),
        ("threads", "count", lambda lf: lf.threads, whole),
        ("connections to the camera (TCP SYNs, start to stop)", "count",
         lambda lf: lf.syns, whole),
        ("RTSP PLAYs at the simulator", "count", lambda lf: lf.plays, whole),
        ("start-up (serve → /healthz)", "s", lambda lf: lf.startup_s, "{:.2f}"),
        ("GET /api/v1/cameras?limit=1000, administrator (median of 5)", "ms",
         lambda lf: statistics.median(lf.listing_admin_ms), "{:.0f}"),
        ("GET /api/v1/cameras?limit=1000, viewer (median of 5)", "ms",
         lambda lf: statistics.median(lf.listing_viewer_ms), "{:.0f}"),
        ("`camrelay camera list --limit 1000 --json` (viewer; CLI start-up included)", "s",
         lambda lf: lf.cli_list_s or 0.0, "{:.2f}"),
    ]
    for title, unit, fn, fmt in rows:
        cells = [med(by(c, fn), fmt) for c in counts]
        lines.append(f"| {title} | {unit} | " + " | ".join(cells) + " | " + diff(fn, fmt)
                     + " |")
    lines.append("")
    for c in counts:
        worst = [max(lf.listing_admin_ms + lf.listing_viewer_ms) for lf in lives
                 if lf.cameras == c]
        pages = {(lf.listing_items, lf.listing_total) for lf in lives if lf.cameras == c}
        lines.append(f"- {c} cameras: listing answered {sorted(pages)} (items, total); "
                     f"slowest of {len(worst) * 10} listings {max(worst):.0f} ms; "
                     f"`camrelay catalog import` of the store took "
                     f"{stores[c].import_s:.2f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ensure_clip(DEFAULT_OUT)
    load = Path("/proc/loadavg").read_text().split()[:3]
    started = datetime.now(UTC)
    header = (f"idle.py cameras={args.cameras} rounds={args.rounds} settle={args.settle:g}s "
              f"window={args.window:g}s; {started:%Y-%m-%d %H:%M} UTC; {platform.node()} "
              f"{os.cpu_count()} CPUs; load before {' '.join(load)}; tree {tree_state()}")
    print(header, flush=True)
    sim = CamSim(DEFAULT_OUT)
    counts = [0, args.cameras]
    lives: list[Life] = []
    try:
        camera_url = sim.url("/bench")
        stores: dict[int, Store] = {}
        tap = TapProcess(log_dir / f"idle-tap-{os.getpid()}.bin", syn_port=sim.port)
        try:
            with (log_dir / "camrelay-idle.log").open("ab") as log:
                for c in counts:
                    t = time.monotonic()
                    stores[c] = build_store(camera_url, c, free_port(), log)
                    print(f"store with {c} cameras set up through the CLI in "
                          f"{time.monotonic() - t:.1f} s (import {stores[c].import_s:.2f} s)",
                          flush=True)
        finally:
            summary, _ = tap.stop()
        print(f"connections to the camera while setting up: {summary['records']}", flush=True)
        for r in range(args.rounds):
            for c in counts if r % 2 == 0 else list(reversed(counts)):
                life = run_life(stores[c], c, r + 1, args, sim, log_dir)
                lives.append(life)
                print(f"round {r + 1}, {c} cameras: CPU {life.cpu_pct:.2f} %, RSS "
                      f"{life.rss_mb:.1f} MB, {life.syns} connections, {life.plays} PLAYs, "
                      f"listing {statistics.median(life.listing_admin_ms):.0f} ms",
                      flush=True)
    finally:
        sim.close()
    text = report(lives, counts, header, stores)
    print("\n" + text, flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"header": header, "report": text,
                                               "lives": [asdict(lf) for lf in lives]},
                                              indent=2))
    grown = [b.rss_mb - a.rss_mb for a, b in zip(
        [lf for lf in lives if lf.cameras == counts[0]],
        [lf for lf in lives if lf.cameras == counts[1]])]
    ok = (all(lf.syns == 0 and lf.plays == 0 for lf in lives)
          and statistics.median(grown) < 50
          and statistics.median([lf.cpu_pct for lf in lives if lf.cameras == counts[1]]) < 1)
    print("targets met" if ok else "targets NOT met", flush=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after /healthz before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--json", default=str(ROOT / "tests/.cache/bench/idle.json"))
    parser.add_argument("--log-dir", default=str(ROOT / "tests/.cache/bench/logs"))
    args = parser.parse_args()
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
