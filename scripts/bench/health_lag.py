#!/usr/bin/env python3
"""Issue 15, the cause: what the health probes do to the server's event loop.

    .venv/bin/python scripts/bench/health_lag.py [--seconds 40] [--cameras 1000]
        [--period 300] [--modes off,on,off,on] [--debug]

Needs root (a loopback-only network namespace, as health_load.py).  The server's
application (``camrelay.app.create_app``) runs in this process on a copy of a store set
up through the CLI (health_load.py's: camera 1 on ``/bench``, the probed ones on
``/p1080``), with ``health.enabled`` on or off per life; camera 1 is kept streaming by
one hub subscription (its RTSP ingest runs as for a viewer).  Per life, after 5 s:

* **loop lag**: a task sleeping 5 ms at a time records how late it wakes (p50/p99/max,
  and the count of wakes later than 20 ms and 50 ms);
* **unit gaps**: the longest gaps between the watched camera's access units reaching the
  subscriber (25 fps: 40 ms apart);
* **CPU**: the event-loop thread's CPU and the whole process's, per second;
* **RSS** of this process and of its probe process (MB);
* **per probe**, with probing on: wall time of the loop-side steps of a check (the
  history write, the alarm observers) and the count of checks.

``--debug`` runs the "on" lives with asyncio's debug mode and logs every callback that
held the loop longer than 20 ms (its name), summarised at the end of the life.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from perf import in_own_netns
from relays import free_port

PROBE_MOUNT = "p1080"


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[str] = Counter()
        self.worst: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if not msg.startswith("Executing "):
            return
        head, _, took = msg.rpartition(" took ")
        name = head.removeprefix("Executing ")[:160]
        seconds = float(took.split()[0])
        self.seen[name] += 1
        self.worst[name] = max(self.worst.get(name, 0.0), seconds)


async def life(data_dir: Path, health: bool, args: argparse.Namespace) -> dict[str, Any]:
    from aiohttp import web

    from camrelay.app import create_app
    from camrelay.cli.local import local_settings
    from camrelay.relay.media import StreamKey
    from camrelay.store import Store
    from camrelay.web.keys import HUB_KEY, MONITOR_KEY

    os.environ["CAMRELAY_HEALTH__ENABLED"] = "true" if health else "false"
    os.environ["CAMRELAY_HEALTH__PERIOD_SECONDS"] = str(args.period)
    os.environ["CAMRELAY_SERVER__LISTEN"] = f"127.0.0.1:{free_port()}"
    netns = os.environ.pop("CAMRELAY_BENCH_NETNS", None)  # not a setting
    settings = local_settings(None, data_dir)
    if netns is not None:
        os.environ["CAMRELAY_BENCH_NETNS"] = netns
    loop = asyncio.get_running_loop()
    slow = SlowCallbacks()
    if args.debug and health:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.02
        logging.getLogger("asyncio").addHandler(slow)
    store = await Store.open(settings)
    app = create_app(settings, store)
    runner = web.AppRunner(app)
    await runner.setup()
    monitor = app[MONITOR_KEY]
    steps: dict[str, list[float]] = {"record": [], "observers": []}
    record = monitor.history.record

    async def timed_record(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return await record(*a, **k)
        finally:
            steps["record"].append(time.perf_counter() - t)

    monitor.history.record = timed_record  # type: ignore[method-assign]
    observers = list(monitor.observers)

    async def timed_observers(camera_id: int, verdict: Any) -> None:
        t = time.perf_counter()
        for o in observers:
            await o(camera_id, verdict)
        steps["observers"].append(time.perf_counter() - t)

    monitor.observers[:] = [timed_observers]
    hub = app[HUB_KEY]
    sub = await hub.subscribe(StreamKey(1, "main"), timeout=10)
    gaps: list[float] = []
    lags: list[float] = []
    measuring = False

    async def drain() -> None:
        last = None
        while True:
            await sub.get()
            now = loop.time()
            if measuring and last is not None:
                gaps.append(now - last)
            last = now

    async def sampler() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            if measuring:
                lags.append(loop.time() - t - 0.005)

    tasks = [asyncio.create_task(drain()), asyncio.create_task(sampler())]
    await asyncio.sleep(5)
    main_tid = threading.get_native_id()

    def thread_cpu() -> float:
        stat = Path(f"/proc/self/task/{main_tid}/stat").read_text()
        f = stat[stat.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    measuring = True
    checks0 = monitor.checks
    steps["record"].clear()
    steps["observers"].clear()
    slow.seen.clear()
    t0, c0, m0 = time.monotonic(), time.process_time(), thread_cpu()
    prof = None
    if args.profile and health:
        import cProfile

        prof = cProfile.Profile()  # the event loop's thread only
        prof.enable()
    await asyncio.sleep(args.seconds)
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(60)
    span = time.monotonic() - t0
    cpu = (time.process_time() - c0) / span * 1000
    mcpu = (thread_cpu() - m0) / span * 1000
    measuring = False
    checks = monitor.checks - checks0
    probe_rss = 0
    if monitor.probes.pid is not None:
        for line in Path(f"/proc/{monitor.probes.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                probe_rss = int(line.split()[1]) // 1024
    own_rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            own_rss = int(line.split()[1]) // 1024
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sub.close()
    await runner.cleanup()
    await store.close()
    loop.set_debug(False)
    logging.getLogger("asyncio").removeHandler(slow)
    out = {
        "health": health, "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "checks_per_s": checks / span, "cpu_ms_per_s": cpu, "loop_thread_cpu_ms_per_s": mcpu,
        "lag_ms_p50": _pct(lags, 0.5) * 1000, "lag_ms_p99": _pct(lags, 0.99) * 1000,
        "lag_ms_max": max(lags, default=0) * 1000,
        "lags_over_20ms": sum(1 for x in lags if x > 0.02),
        "lags_over_50ms": sum(1 for x in lags if x > 0.05),
        "unit_gap_ms_p99": _pct(gaps, 0.99) * 1000, "unit_gap_ms_max": max(gaps, default=0) * 1000,
        "units": len(gaps), "probe_process_rss_mb": probe_rss, "own_rss_mb": own_rss,
    }
    for name, xs in steps.items():
        if xs:
            out[f"{name}_ms_median"] = statistics.median(xs) * 1000
            out[f"{name}_ms_max"] = max(xs) * 1000
    if slow.seen:
        out["slow_callbacks"] = [(n, c, round(slow.worst[n] * 1000, 1))
                                 for n, c in slow.seen.most_common(8)]
    return out


def run(args: argparse.Namespace) -> int:
    from camrelay_relay import build_store
    from clip import DEFAULT_OUT, ensure_clip, ensure_variant

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ensure_clip(DEFAULT_OUT)
    ensure_variant(DEFAULT_OUT, PROBE_MOUNT, 1920, 1080, 2, 4_000_000, 4)
    logging.basicConfig(level=logging.WARNING, filename=str(log_dir / "health_lag.log"))
    sim = CamSim(DEFAULT_OUT)
    try:
        with (log_dir / "camrelay-health.log").open("ab") as log:
            store = build_store(sim.url("/bench"), args.cameras + 1, free_port(), log,
                                others_url=sim.url("/" + PROBE_MOUNT))
        for mode in args.modes.split(","):
            result = asyncio.run(life(store.copy(), mode == "on", args))
            print(result, flush=True)
    finally:
        sim.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--period", type=float, default=300.0)
    parser.add_argument("--modes", default="off,on,on,off")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the event loop's thread in the on lives")
    parser.add_argument("--log-dir", default=str(ROOT / "tests/.cache/bench/logs"))
    args = parser.parse_args()
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
