#!/usr/bin/env python3
"""Issue 15: relay delivery to 16 viewers while device health probes 1 000 other cameras.

    .venv/bin/python scripts/bench/health_load.py [--quick] [--rounds 2] [--window 60]
        [--warmup 10] [--cameras 1000] [--period 300] [--concurrency N] [--json out.json]

Needs root: like perf.py it re-executes itself in a fresh loopback-only network namespace
(``perf.reexec_in_netns``).  One camera simulator (scripts/camsim.py) serves two mounts:

* ``/bench``: perf.py's 720p25 ~3 Mbit/s GOP 2 s clip, the **watched camera** (catalogue
  camera 1): 16 aiortc viewers (viewers.py: one decoding viewer that checks frame
  numbers, 15 counting ones), RTP over UDP as in perf.py;
* ``/p1080``: a 1920x1080 25 fps ~4 Mbit/s GOP 2 s clip of the same picture (clip.py
  ``ensure_variant``), shared by the **1 000 probed cameras** (catalogue cameras 2..1001,
  one mount: the simulator starts a pipeline of its own for every RTSP session, so each
  probe is a full RTSP session, as with 1 000 real cameras).

The real server (``camrelay serve``, as perf.py's relay ``camrelay``, on a copy of one
store set up through the CLI) runs one life per measurement with ``health.enabled`` true
or false, ``health.period_seconds`` 300 (the issue's period: no compression, so the
probes run at their real rate, 1 000 / 300 s = 3.3 probes/s, a probe every 0.3 s) and
diagnosis on (``health.diagnosis.enabled``, its default).  Lives alternate on/off within one run in ABBA order (on, off, off, on, ...)
so a drift of the shared machine's load falls on both sides.  Per life: start, 16 viewers
(READY = every viewer has media), ``--warmup`` s, then one ``--window`` s measurement
(perf.measure: viewer fps, lost packets, the server's CPU from /proc with its probe
process, the server's own process apart, the packet tap's
added latency; the tap's camera flow is the watched camera's, the probes' short RTP flows
are left out); meanwhile RTSP connections to the simulator are counted from
/proc/net/tcp every 50 ms (the watched camera holds one: the rest are probes open at
once).  Probes completed = probed cameras whose ``last_seen`` (``GET /api/v1/health``)
falls in the window (each camera is probed once per period, so once at most in a window
shorter than it), with the simulator's PLAY count on ``/p1080`` as a cross-check.  After
each life the access journal is verified (16 views opened and closed).

The probe's average CPU is the server's CPU with probing on minus off (medians over the
lives); the simulator's own CPU is shown too (it shares the machine's cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from perf import RelayRound, Viewers, Window, end_life, in_own_netns, measure
from procstat import TICK, cpu_seconds, cpu_ticks
from relays import Camrelay, free_port

PROBE_MOUNT = "p1080"


class ProbedServer(Camrelay):
    """``camrelay serve`` on a copy of a prepared store (the watched camera first)."""

    name = "camrelay-health"

    def __init__(self, store: Any, log_dir: Path, settings: dict[str, str]) -> None:
        super().__init__("", log_dir)
        self.prepared = store
        self.extra_env = settings

    def start(self, cameras: int = 0) -> None:
        from camrelay_relay import Server

        self.store = self.prepared
        self.token = self.store.viewer_token
        with self._log() as log:
            self.server = Server(self.store.copy(), free_port(), log, extra=self.extra_env)
        self.url = self.server.url


class Connections(threading.Thread):
    """Samples the established TCP connections to ``port`` (the simulator's RTSP port)."""

    def __init__(self, port: int, every: float = 0.05) -> None:
        super().__init__(name="rtsp-connections", daemon=True)
        self.port = f"{port:04X}"
        self.every = every
        self.samples: list[int] = []
        self._done = threading.Event()

    def count(self) -> int:
        n = 0
        with open("/proc/net/tcp") as f:  # this namespace's sockets
            next(f)
            for line in f:
                fields = line.split()
                if fields[2].endswith(":" + self.port) and fields[3] == "01":
                    n += 1
        return n

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.samples.append(self.count())

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Life:
    round: int
    health: bool
    load: str
    window: Window | None = None
    span_s: float = 0.0
    probes_done: int = 0  # probed cameras last seen within the window
    plays: int = 0  # PLAY requests on the probe mount within the window
    conn_max: int = 0  # RTSP connections to the simulator (watched camera included)
    conn_mean: float = 0.0
    sim_cpu_ms_per_s: float = 0.0
    # the server's own process, without its children (the probe process): CPU per second
    main_cpu_ms_per_s: float = 0.0
    statuses: dict[str, int] | None = None  # probed cameras by status/reason after the life
    journal: str = ""
    error: str | None = None

    @property
    def probes_per_s(self) -> float:
        return self.probes_done / self.span_s if self.span_s else 0.0


def health_list(url: str, token: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(url + "/api/v1/health",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return list(json.loads(resp.read()))


def run_life(n: int, health: bool, store: Any, sim: Any, args: argparse.Namespace,
             log_dir: Path, clip_frames: int) -> Life:
    life = Life(n, health, " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    settings = {"CAMRELAY_HEALTH__ENABLED": "true" if health else "false",
                "CAMRELAY_HEALTH__PERIOD_SECONDS": str(args.period)}  # diagnosis: on by default
    if args.concurrency:
        settings["CAMRELAY_HEALTH__CONCURRENCY"] = str(args.concurrency)
    relay = ProbedServer(store, log_dir, settings)
    result = RelayRound(relay.name, n)
    viewers: list[Viewers] = []
    try:
        relay.start()
        checker = Viewers(relay, [1], decode=True, clip_frames=clip_frames, log_dir=log_dir)
        viewers.append(checker)
        counting = Viewers(relay, [1] * 15, decode=False, clip_frames=clip_frames,
                           log_dir=log_dir)
        viewers.append(counting)
        time.sleep(args.warmup)
        conns = Connections(sim.port)
        conns.start()
        plays0, sim0 = sim.play_count(PROBE_MOUNT), cpu_seconds(sim.proc.pid)
        own0 = cpu_ticks(relay.server.pid)
        t0, w0 = time.monotonic(), datetime.now(UTC)
        try:
            life.window = measure(relay, checker, counting, 0.0, args.window,
                                  log_dir / f"tap-{os.getpid()}.bin", busiest_camera=True)
        finally:
            conns.stop()
        # measure() ends with the tap's analysis: the span is what it slept, not more
        life.span_s = args.window
        w1 = w0 + timedelta(seconds=args.window + 1.0)  # + the tap's start
        spent = time.monotonic() - t0
        life.sim_cpu_ms_per_s = (cpu_seconds(sim.proc.pid) - sim0) * 1000 / spent
        life.main_cpu_ms_per_s = (cpu_ticks(relay.server.pid) - own0) / TICK * 1000 / spent
        life.plays = sim.play_count(PROBE_MOUNT) - plays0
        life.conn_max = max(conns.samples, default=0)
        life.conn_mean = statistics.mean(conns.samples) if conns.samples else 0.0
        cams = health_list(relay.url, store.admin_token)
        probed = [c for c in cams if c["camera_id"] != store.camera_ids[0]]
        life.probes_done = sum(1 for c in probed if c["last_seen"] and
                               w0 <= datetime.fromisoformat(c["last_seen"]) <= w1)
        tally: dict[str, int] = {}
        for c in probed:
            key = c["status"] + (f"/{c['reason']}" if c["reason"] else "")
            tally[key] = tally.get(key, 0) + 1
        life.statuses = tally
        end_life(relay, viewers, result)
        life.journal = result.journal[-1] if result.journal else ""
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        life.error = str(err)
        print(f"  life {n} health={health}: FAILED: {err}", flush=True)
    finally:
        for v in viewers:
            v.close()
        relay.stop()
    return life


# --------------------------------------------------------------------------- report

def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def report(lives: list[Life], header: str) -> str:
    lines = [header, "", ("| life | probing | load | decoding viewer fps | slowest of 15 fps | "
             "lost | added latency p50 / p99 / max (ms) | server CPU (ms/s) | of which the "
             "server's own process | simulator CPU (ms/s) | probes done/s | PLAYs/s | "
             "RTSP connections max / mean |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for life in lives:
        w = life.window
        if w is None:
            lines.append(f"| {life.round} | {'on' if life.health else 'off'} | {life.load} | "
                         f"FAILED: {life.error} |")
            continue
        lines.append(
            f"| {life.round} | {'on' if life.health else 'off'} | {life.load} | "
            f"{w.checker_fps:.1f} ({w.checker_discontinuities} disc) | "
            f"{_fmt(w.viewer_fps_min)} | {w.lost} | {_fmt(w.latency_p50_ms, '.2f')} / "
            f"{_fmt(w.latency_p99_ms, '.2f')} / {_fmt(w.latency_max_ms, '.2f')} | "
            f"{w.cpu_ms_per_s:.1f} | {life.main_cpu_ms_per_s:.1f} | "
            f"{life.sim_cpu_ms_per_s:.1f} | {life.probes_per_s:.2f} | "
            f"{life.plays / life.span_s:.2f} | {life.conn_max} / {life.conn_mean:.2f} |")
    lines.append("")
    ok = [life for life in lives if life.window is not None]

    def side(on: bool, fn: Any) -> float | None:
        return _med([float(v) for v in (fn(x) for x in ok if x.health == on)
                     if v is not None])

    rows = [("decoding viewer fps", lambda x: x.window.checker_fps, ".2f"),
            ("slowest counting viewer fps", lambda x: x.window.viewer_fps_min, ".2f"),
            ("added latency p50 (ms)", lambda x: x.window.latency_p50_ms, ".2f"),
            ("added latency p99 (ms)", lambda x: x.window.latency_p99_ms, ".2f"),
            ("server CPU (ms/s)", lambda x: x.window.cpu_ms_per_s, ".1f"),
            ("of which the server's own process (ms/s)", lambda x: x.main_cpu_ms_per_s,
             ".1f"),
            ("simulator CPU (ms/s)", lambda x: x.sim_cpu_ms_per_s, ".1f"),
            ("probes done per second", lambda x: x.probes_per_s, ".2f"),
            ("RTSP connections to the simulator, max", lambda x: x.conn_max, ".0f")]
    lines += ["| median over lives | probing on | probing off | on ÷ off | on − off |",
              "|---|---|---|---|---|"]
    for title, fn, spec in rows:
        a, b = side(True, fn), side(False, fn)
        ratio = _fmt(a / b, ".3f") if a is not None and b else "—"
        diff = _fmt(a - b, spec) if a is not None and b is not None else "—"
        lines.append(f"| {title} | {_fmt(a, spec)} | {_fmt(b, spec)} | {ratio} | {diff} |")
    on_cpu = side(True, lambda x: x.window.cpu_ms_per_s)
    off_cpu = side(False, lambda x: x.window.cpu_ms_per_s)
    rate = side(True, lambda x: x.probes_per_s)
    if on_cpu is not None and off_cpu is not None and rate:
        lines += ["", (f"Probe's average CPU in the server: {on_cpu - off_cpu:.1f} ms/s "
                      f"({(on_cpu - off_cpu) / rate:.1f} ms per probe at {rate:.2f} probes/s).")]
    lines += ["", "Per life: probed cameras by status after the window; access journal:"]
    for life in lives:
        lines.append(f"- life {life.round} {'on' if life.health else 'off'}: "
                     f"{life.statuses}; {life.journal}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def run(args: argparse.Namespace) -> int:
    from camrelay_relay import build_store
    from clip import DEFAULT_OUT, ensure_clip, ensure_variant
    from perf import tree_state

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    entry = ensure_clip(DEFAULT_OUT)
    probe_clip = ensure_variant(DEFAULT_OUT, PROBE_MOUNT, 1920, 1080, 2, 4_000_000, 4)
    started = datetime.now(UTC)
    header = (f"health_load.py {'--quick ' if args.quick else ''}rounds={args.rounds} "
              f"window={args.window:g}s warmup={args.warmup:g}s cameras={args.cameras} "
              f"period={args.period:g}s concurrency={args.concurrency or 'default'}; "
              f"{started:%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs; load before "
              f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}; watched "
              f"{entry['width']}x{entry['height']} {int(entry['bitrate']) / 1e6:.2f} Mbit/s, "
              f"probed {probe_clip['width']}x{probe_clip['height']} "
              f"{int(probe_clip['bitrate']) / 1e6:.2f} Mbit/s GOP 2 s, RTSP/UDP; "
              f"tree {tree_state()}")
    print(header, flush=True)
    sim = CamSim(DEFAULT_OUT)
    lives: list[Life] = []
    try:
        t = time.monotonic()
        with (log_dir / "camrelay-health.log").open("ab") as log:
            store = build_store(sim.url("/bench"), args.cameras + 1, free_port(), log,
                                others_url=sim.url("/" + PROBE_MOUNT))
        print(f"store with {args.cameras + 1} cameras: {time.monotonic() - t:.0f} s",
              flush=True)
        for n in range(args.rounds):
            for health in ((True, False) if n % 2 == 0 else (False, True)):
                t = time.monotonic()
                life = run_life(len(lives) + 1, health, store, sim, args, log_dir,
                                int(entry["frames"]))
                lives.append(life)
                w = life.window
                print(f"life {life.round} probing {'on' if health else 'off'}: "
                      f"{time.monotonic() - t:.0f} s; "
                      + ("FAILED" if w is None else
                         f"cpu {w.cpu_ms_per_s:.1f} ms/s, fps {w.checker_fps:.1f}/"
                         f"{_fmt(w.viewer_fps_min)}, p99 {_fmt(w.latency_p99_ms, '.2f')} ms, "
                         f"{life.probes_per_s:.2f} probes/s, conns max {life.conn_max}"),
                      flush=True)
    finally:
        sim.close()
    text = report(lives, header)
    text += f"\n\nwall time {(datetime.now(UTC) - started).total_seconds():.0f} s"
    print("\n" + text, flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"header": header, "lives": [asdict(x) for x in lives], "report": text},
            indent=2, default=str))
    return 0 if all(x.error is None for x in lives) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round (on, off), 20 s windows (~3 min)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of two lives (on+off), ABBA order")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds after every viewer has media")
    parser.add_argument("--cameras", type=int, default=1000, help="probed cameras")
    parser.add_argument("--period", type=float, default=300.0, help="health.period_seconds")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="health.concurrency (default: the server's)")
    parser.add_argument("--json", default=str(ROOT / "tests/.cache/bench/health_load.json"))
    parser.add_argument("--log-dir", default=str(ROOT / "tests/.cache/bench/logs"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.window, args.warmup = 1, 20.0, 5.0
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
