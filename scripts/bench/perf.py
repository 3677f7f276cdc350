#!/usr/bin/env python3
"""Issue 6 benchmark: camrelay against Janus and aiortc passthrough, in one run.

    .venv/bin/python scripts/bench/perf.py [--quick] [--rounds 3] [--window 8]
        [--relays janus aiortc camrelay camrelay-nogate] [--no-tap]
        [--camrelay-workers N] [--json out.json]

Needs root (a fresh loopback-only network namespace; the script re-executes itself under
``unshare --net``) and ``bash scripts/bench/setup.sh`` (Janus).  Inside the namespace:
``lo`` (127.0.0.1) and a dummy interface ``bench0`` (dummy, or an empty bridge where the kernel has no dummy
driver) with 127.0.0.2/32, the only address
offered for ICE (Janus' libnice gathers nothing on ``lo``; aioice never offers 127.0.0.1).

One camera simulator (scripts/camsim.py, the 720p25 ~3 Mbit/s GOP 2 s clip of
scripts/bench/clip.py at /bench, RTP over UDP to every relay) serves all relays.  Each
round runs every relay in turn (the order rotates from round to round); per relay:

1. start it with one camera; RSS before any viewer ("base");
2. one decoding viewer (checks frame numbers) -> CPU and RSS over the window ("1 viewer");
3. plus 15 non-decoding viewers of the same camera -> "16 viewers";
4. restart it with 16 cameras; one viewer each (the decoding one on camera 1) -> "16 cameras".

Relay CPU is utime + stime of the relay's process tree from /proc over the window.
Viewers run in two other processes (viewers.py).  Figures are medians over rounds with
min-max; every camrelay figure is also a ratio to the Janus, aiortc and camrelay-nogate
figures of the same run.  A measurement in which any viewer got < 24 fps is marked INVALID.

``camrelay`` is the real server (``camrelay serve`` on a store set up through the CLI;
viewers carry a viewer's token, every view is authorised and journalled; after each life
the journal is read back and verified); ``camrelay-nogate`` the same relay code behind the
tests' gate (no authorisation, no journal).  Added latency: during the 1- and 16-viewer
windows a packet tap (tap.py) records the camera's and the relay's RTP headers on the
wire; see ``tap.added_latency``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from procstat import cpu_seconds, end_child, med, rss_bytes
from relays import RELAYS, Camrelay, Relay, janus_available
from tap import TapProcess, added_latency

MIN_FPS = 24.0
NETNS_ENV = "CAMRELAY_BENCH_NETNS"


# --------------------------------------------------------------------------- namespace

def in_netns() -> bool:
    names = sorted(name for _, name in socket.if_nameindex())
    return os.environ.get(NETNS_ENV) == "1" and names == ["bench0", "lo"]


def in_own_netns(args: Any, run: Callable[[Any], int]) -> int:
    """``run(args)`` inside the bench's own loopback-only namespace (re-executed there
    with ``unshare --net``, which needs root)."""
    if in_netns():
        return run(args)
    if os.geteuid() != 0:
        print(f"{Path(sys.argv[0]).name} needs root for its network namespace (unshare --net)",
              file=sys.stderr)
        return 2
    return reexec_in_netns()


def reexec_in_netns() -> int:
    script = ("set -e; ip link set lo up; "
              "ip link add bench0 type dummy 2>/dev/null || ip link add bench0 type bridge; "
              "ip link set bench0 up; ip addr add 127.0.0.2/32 dev bench0; "
              f"export {NETNS_ENV}=1; exec \"$@\"")
    cmd = ["unshare", "--net", "--fork", "--", "bash", "-c", script, "bench",
           sys.executable, *sys.argv]
    return subprocess.call(cmd)


# --------------------------------------------------------------------------- viewers

class Viewers:
    """A viewers.py process: ``mark()`` returns its cumulative counters."""

    def __init__(self, relay: Relay, cameras: list[int], *, decode: bool, clip_frames: int,
                 log_dir: Path, audio: bool = False) -> None:
        cmd = [sys.executable, str(HERE / "viewers.py"), "--signal", relay.signal,
               "--url", relay.url, "--clip-frames", str(clip_frames),
               "--cameras", *(str(relay.camera_id(c)) for c in cameras)]
        if decode:
            cmd.append("--decode")
        if audio:
            cmd.append("--audio")
        log = (log_dir / "viewers.log").open("ab")
        self.count = len(cameras)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True,
                                     env=dict(os.environ, CAMRELAY_BENCH_TOKEN=relay.token))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.close()
            raise RuntimeError(f"{relay.name}: viewers did not get media (see {log.name})")

    def mark(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("MARK\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        end_child(self.proc, 15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Window:
    """One measurement window."""

    cpu_ms_per_s: float  # relay CPU
    rss_mb: float
    checker_fps: float
    checker_discontinuities: int
    checker_unreadable: int
    viewer_fps_min: float | None = None  # non-decoding viewers
    viewer_pps: float | None = None  # RTP packets per second per viewer (mean)
    viewer_mbps: float | None = None
    lost: int = 0
    valid: bool = True
    # added latency (packet tap), camera frame arrival -> departure to each viewer
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    latency_frames: int = 0  # viewer frames captured
    latency_matched: int = 0  # paired with their camera frame
    latency_negative: int = 0
    latency_disagree: int = 0  # viewer flows whose two offset methods disagree
    latency_keys: int = 0  # viewer keyframes paired with a camera frame
    latency_keys_ok: int = 0  # ... that is a keyframe too
    latency_camera_gap_ms: float | None = None  # longest pause between camera frames
    latency_datagrams: int = 0  # RTP datagrams sent to the viewers (tap) ...
    latency_gso_packets: int = 0  # ... in this many GSO packets
    latency_note: str = ""
    tap_cpu_ms_per_s: float | None = None
    tap_drops: int = 0
    tap_interfaces: dict[str, int] | None = None


def measure(relay: Relay, checker: Viewers, counting: Viewers | None, warmup: float,
            window: float, tap_file: Path | None = None, keep: Path | None = None,
            *, busiest_camera: bool = False) -> Window:
    time.sleep(warmup)
    tap = TapProcess(tap_file) if tap_file is not None else None
    try:
        c0, cpu0 = checker.mark(), cpu_seconds(relay.pid)
        n0 = counting.mark() if counting else None
        t0 = time.monotonic()
        time.sleep(window)
        c1, cpu1 = checker.mark(), cpu_seconds(relay.pid)
        n1 = counting.mark() if counting else None
        elapsed = time.monotonic() - t0
        rss = rss_bytes(relay.pid) / 2**20
    except BaseException:
        if tap is not None:
            tap.kill()
        raise
    tapped = tap.stop(keep) if tap is not None else None
    a, b = c0["viewers"][0], c1["viewers"][0]
    w = Window(cpu_ms_per_s=(cpu1 - cpu0) * 1000 / elapsed, rss_mb=rss,
               checker_fps=(b["decoded"] - a["decoded"]) / (c1["t"] - c0["t"]),
               checker_discontinuities=b["discontinuities"] - a["discontinuities"],
               checker_unreadable=b["unreadable"] - a["unreadable"])
    if n0 is not None and n1 is not None:
        span = n1["t"] - n0["t"]
        fps = [(y["frames"] - x["frames"]) / span for x, y in zip(n0["viewers"], n1["viewers"])]
        pps = [(y["packets"] - x["packets"]) / span for x, y in zip(n0["viewers"], n1["viewers"])]
        mbps = [(y["bytes"] - x["bytes"]) * 8e-6 / span
                for x, y in zip(n0["viewers"], n1["viewers"])]
        w.viewer_fps_min = min(fps)
        w.viewer_pps = statistics.mean(pps)
        w.viewer_mbps = statistics.mean(mbps)
        w.lost = sum(y["lost"] - x["lost"] for x, y in zip(n0["viewers"], n1["viewers"]))
    w.valid = w.checker_fps >= MIN_FPS and (w.viewer_fps_min is None or
                                            w.viewer_fps_min >= MIN_FPS)
    if tapped is not None:
        summary, records = tapped
        w.tap_cpu_ms_per_s = summary["cpu_s"] * 1000 / summary["wall_s"]
        w.tap_drops = int(summary["drops"])
        w.tap_interfaces = dict(summary["interfaces"])
        lat = added_latency(records, busiest_camera=busiest_camera)
        w.latency_p50_ms, w.latency_p99_ms, w.latency_max_ms = (lat.p50_ms, lat.p99_ms,
                                                                lat.max_ms)
        w.latency_frames, w.latency_matched = lat.frames, lat.matched
        w.latency_negative, w.latency_disagree = lat.negative, lat.disagree
        w.latency_keys, w.latency_keys_ok = lat.keys, lat.keys_ok
        w.latency_camera_gap_ms = lat.camera_gap_ms
        w.latency_datagrams, w.latency_gso_packets = lat.datagrams, lat.gso_packets
        viewers = checker.count + (counting.count if counting else 0)
        w.latency_note = lat.note or ("" if lat.viewers == viewers else
                                      f"{lat.viewers} viewer flows for {viewers} viewers")
    return w


@dataclass
class RelayRound:
    relay: str
    round: int
    base_rss_mb: float = 0.0
    one: Window | None = None
    sixteen: Window | None = None
    cameras16: Window | None = None
    error: str | None = None
    journal: list[str] = field(default_factory=list)  # what the relay recorded, per life

    # derived figures
    def marginal_ms(self) -> float | None:  # relay CPU per added viewer, ms per viewer-second
        if self.one is None or self.sixteen is None:
            return None
        return (self.sixteen.cpu_ms_per_s - self.one.cpu_ms_per_s) / 15

    def marginal_us_per_packet(self) -> float | None:
        m = self.marginal_ms()
        if m is None or self.sixteen is None or not self.sixteen.viewer_pps:
            return None
        return m * 1000 / self.sixteen.viewer_pps

    def camera_ms(self) -> float | None:  # per watched camera with its one viewer
        return None if self.cameras16 is None else self.cameras16.cpu_ms_per_s / 16

    def ingest_ms(self) -> float | None:  # per watched camera, minus one viewer's cost
        cam, m = self.camera_ms(), self.marginal_ms()
        return None if cam is None or m is None else cam - m

    def rss_per_viewer_mb(self) -> float | None:
        if self.one is None or self.sixteen is None:
            return None
        return (self.sixteen.rss_mb - self.one.rss_mb) / 15

    @property
    def valid(self) -> bool:
        """No measured window had a viewer below MIN_FPS (windows not run do not count)."""
        windows = (self.one, self.sixteen, self.cameras16)
        return any(w is not None for w in windows) and all(w.valid for w in windows if w)


def end_life(relay: Relay, viewers: list[Viewers], result: RelayRound) -> None:
    """Viewers leave; the relay's own record of the life is checked; the relay stops."""
    count = sum(v.count for v in viewers)
    for v in viewers:
        v.close()
    viewers.clear()
    try:
        line = relay.finish(count)
        if line:
            result.journal.append(line)
            print(f"  {relay.name}: {line}", flush=True)
    finally:
        relay.stop()


def keep_tap(args: argparse.Namespace, kind: str, rnd: int, window: str) -> Path | None:
    return Path(args.keep_tap) / f"{kind}-r{rnd}-{window}.bin" if args.keep_tap else None


def run_relay(kind: str, rnd: int, camera_url: str, args: argparse.Namespace,
              log_dir: Path, clip_frames: int) -> RelayRound:
    result = RelayRound(kind, rnd)
    relay = RELAYS[kind](camera_url, log_dir)
    if isinstance(relay, Camrelay):
        relay.workers = args.camrelay_workers
        relay.extra_env = dict(kv.split("=", 1) for kv in args.server_env)
    tap_file = None if not args.tap else log_dir / f"tap-{os.getpid()}.bin"
    viewers: list[Viewers] = []
    try:
        if "1cam" in args.scenarios:
            relay.start(1)
            time.sleep(1.0)
            result.base_rss_mb = rss_bytes(relay.pid) / 2**20
            checker = Viewers(relay, [1], decode=True, clip_frames=clip_frames,
                              log_dir=log_dir)
            viewers.append(checker)
            result.one = measure(relay, checker, None, args.warmup, args.window, tap_file,
                                 keep_tap(args, kind, rnd, "1v"))
            counting = Viewers(relay, [1] * 15, decode=False, clip_frames=clip_frames,
                               log_dir=log_dir)
            viewers.append(counting)
            result.sixteen = measure(relay, checker, counting, args.warmup, args.window,
                                     tap_file, keep_tap(args, kind, rnd, "16v"))
            end_life(relay, viewers, result)
        if "16cams" not in args.scenarios:
            return result

        relay.start(16)
        checker = Viewers(relay, [1], decode=True, clip_frames=clip_frames, log_dir=log_dir)
        viewers.append(checker)
        counting = Viewers(relay, list(range(2, 17)), decode=False, clip_frames=clip_frames,
                           log_dir=log_dir)
        viewers.append(counting)
        result.cameras16 = measure(relay, checker, counting, args.warmup, args.window)
        end_life(relay, viewers, result)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        result.error = str(err)
        print(f"  {kind}: FAILED: {err}", flush=True)
    finally:
        for v in viewers:
            v.close()
        relay.stop()
    return result


# --------------------------------------------------------------------------- report



FIGURES: list[tuple[str, str, Any]] = [
    ("marginal CPU per added viewer (1→16 viewers)", "ms/viewer-s", RelayRound.marginal_ms),
    ("  same, per RTP packet sent", "µs/packet", RelayRound.marginal_us_per_packet),
    ("CPU per watched camera (16 cameras × 1 viewer)", "ms/s", RelayRound.camera_ms),
    ("  ingest per watched camera (minus one viewer)", "ms/s", RelayRound.ingest_ms),
    ("relay CPU, 1 camera 1 viewer", "ms/s", lambda r: r.one and r.one.cpu_ms_per_s),
    ("relay CPU, 1 camera 16 viewers", "ms/s", lambda r: r.sixteen and r.sixteen.cpu_ms_per_s),
    ("relay CPU, 16 cameras × 1 viewer", "ms/s",
     lambda r: r.cameras16 and r.cameras16.cpu_ms_per_s),
    ("RSS base (1 camera configured, no viewer)", "MB", lambda r: r.base_rss_mb or None),
    ("RSS per added viewer", "MB", RelayRound.rss_per_viewer_mb),
    ("RSS, 16 cameras × 1 viewer", "MB", lambda r: r.cameras16 and r.cameras16.rss_mb),
    ("added latency p50, 1 viewer", "ms", lambda r: r.one and r.one.latency_p50_ms),
    ("added latency p99, 1 viewer", "ms", lambda r: r.one and r.one.latency_p99_ms),
    ("added latency max, 1 viewer", "ms", lambda r: r.one and r.one.latency_max_ms),
    ("added latency p50, 16 viewers", "ms", lambda r: r.sixteen and r.sixteen.latency_p50_ms),
    ("added latency p99, 16 viewers", "ms", lambda r: r.sixteen and r.sixteen.latency_p99_ms),
    ("added latency max, 16 viewers", "ms", lambda r: r.sixteen and r.sixteen.latency_max_ms),
]

BASELINES = ("janus", "aiortc", "camrelay-nogate")  # ratio columns: camrelay ÷ each


def values(rounds: list[RelayRound], kind: str, fn: Any) -> list[float]:
    out = []
    for r in rounds:
        if r.relay == kind and r.valid:  # a window with a viewer < 24 fps does not count
            v = fn(r)
            if v is not None:
                out.append(float(v))
    return out


def ratios(rounds: list[RelayRound], fn: Any, base: str) -> list[float]:
    """camrelay / base, per round (same run, same camera)."""
    out = []
    for n in sorted({r.round for r in rounds}):
        a = [fn(r) for r in rounds if r.round == n and r.relay == "camrelay" and r.valid]
        b = [fn(r) for r in rounds if r.round == n and r.relay == base and r.valid]
        if a and b and a[0] is not None and b[0]:
            out.append(float(a[0]) / float(b[0]))
    return out


def report(rounds: list[RelayRound], kinds: list[str], header: str) -> str:
    lines = [header, ""]
    counted = ", ".join(f"{k} {sum(r.valid for r in rounds if r.relay == k)} of "
                        f"{sum(r.relay == k for r in rounds)}" for k in kinds)
    note = f"Rounds counted (every viewer >= {MIN_FPS} fps in all three windows): {counted}."
    lines += [note, ""]
    cols = " | ".join(kinds)
    extra = [b for b in BASELINES if b in kinds and "camrelay" in kinds]
    lines.append(f"| figure | unit | {cols} |" + "".join(f" camrelay ÷ {b} |" for b in extra))
    lines.append("|---|---|" + "---|" * (len(kinds) + len(extra)))
    for title, unit, fn in FIGURES:
        row = [med(values(rounds, k, fn)) for k in kinds]
        row += [med(ratios(rounds, fn, b)) for b in extra]
        lines.append(f"| {title} | {unit} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Viewer checks per window (decoding viewer fps / frame-number discontinuities; "
                 "slowest non-decoding viewer fps; packets/s and Mbit/s per viewer; lost):")
    for r in rounds:
        parts = [f"FAILED: {r.error}"] if r.error else []
        for name, w in (("1v", r.one), ("16v", r.sixteen), ("16cam", r.cameras16)):
            if w is None:
                continue
            s = f"{name}: {w.checker_fps:.1f} fps/{w.checker_discontinuities} disc"
            if w.viewer_fps_min is not None:
                s += (f", min {w.viewer_fps_min:.1f} fps, {w.viewer_pps:.0f} pkt/s, "
                      f"{w.viewer_mbps:.2f} Mbit/s, lost {w.lost}")
            if not w.valid:
                s += " INVALID(<24 fps)"
            parts.append(s)
        lines.append(f"- round {r.round} {r.relay}: " + "; ".join(parts))
    if any(w is not None and w.latency_frames for r in rounds for w in (r.one, r.sixteen)):
        lines.append("")
        lines.append("Latency checks per window (viewer frames captured / paired with a camera "
                     "frame; negative delays; viewer flows whose two offset methods disagree; "
                     "viewer keyframes paired with a camera keyframe; longest pause between two camera "
                     "frames on the wire (40 ms at 25 fps: more means the simulator itself "
                     "was starved of CPU); tap CPU and kernel drops):")
        for r in rounds:
            parts = []
            for name, w in (("1v", r.one), ("16v", r.sixteen)):
                if w is None or w.tap_cpu_ms_per_s is None:
                    continue
                parts.append(f"{name}: {w.latency_matched}/{w.latency_frames} frames, "
                             f"{w.latency_negative} neg, {w.latency_disagree} disagree, "
                             f"keyframes {w.latency_keys_ok}/{w.latency_keys}, camera gap "
                             f"{w.latency_camera_gap_ms or 0:.0f} ms, "
                             + (f"{w.latency_gso_packets} GSO packets of "
                                f"{w.latency_datagrams} datagrams, "
                                if w.latency_gso_packets else "")
                             + f"tap {w.tap_cpu_ms_per_s:.1f} ms/s "
                             f"{w.tap_drops} drops {w.tap_interfaces}"
                             + (f" ({w.latency_note})" if w.latency_note else ""))
            lines.append(f"- round {r.round} {r.relay}: " + "; ".join(parts))
    journals = [(r, line) for r in rounds for line in r.journal]
    if journals:
        lines.append("")
        lines.append("Access journal after each camrelay life (`camrelay audit list` + "
                     "`camrelay audit verify`; 1-camera life, then 16-camera life):")
        for r, line in journals:
            lines.append(f"- round {r.round} {r.relay}: {line}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def tree_state() -> str:
    """The commit measured, and whether camrelay/ had uncommitted changes."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             check=False)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "camrelay")
    return head + (" + uncommitted changes in camrelay/" if dirty else "")


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    kinds = list(args.relays)
    if "janus" in kinds and not janus_available():
        print("janus is not installed: run `bash scripts/bench/setup.sh` (or --relays without "
              "janus)", file=sys.stderr)
        return 1
    entry = ensure_clip(DEFAULT_OUT)
    load = Path("/proc/loadavg").read_text().split()[:3]
    started = datetime.now(UTC)
    header = (f"perf.py {'--quick ' if args.quick else ''}rounds={args.rounds} "
              f"window={args.window:g}s warmup={args.warmup:g}s; {started:%Y-%m-%d %H:%M} UTC; "
              f"{platform.node()} {os.cpu_count()} CPUs "
              f"{platform.processor() or platform.machine()}; load before {' '.join(load)}; "
              f"clip {entry['width']}x{entry['height']}@{entry['fps']} "
              f"{int(entry['bitrate']) / 1e6:.2f} Mbit/s GOP {int(entry['gop']) / 25:g}s, "
              f"RTSP/UDP; tree {tree_state()}")
    print(header, flush=True)
    sim = CamSim(DEFAULT_OUT)
    rounds: list[RelayRound] = []
    try:
        camera_url = sim.url("/bench")
        for n in range(args.rounds):
            order = kinds[n % len(kinds):] + kinds[:n % len(kinds)]
            for kind in order:
                t = time.monotonic()
                r = run_relay(kind, n + 1, camera_url, args, log_dir, int(entry["frames"]))
                rounds.append(r)
                m = r.marginal_ms()
                print(f"round {n + 1} {kind}: {time.monotonic() - t:.0f} s, marginal "
                      f"{m if m is None else round(m, 2)} ms/viewer-s, "
                      f"16 cams {r.cameras16 and round(r.cameras16.cpu_ms_per_s, 1)} ms/s",
                      flush=True)
    finally:
        sim.close()
    plays = sim.play_count("/bench")
    text = report(rounds, kinds, header)
    text += f"\n\nRTSP PLAY requests at the simulator: {plays}; " \
            f"wall time {(datetime.now(UTC) - started).total_seconds():.0f} s"
    print("\n" + text, flush=True)
    if args.startup:
        joins = "3" if args.quick else "20"
        gops = ["2"] if args.quick else ["2", "4"]
        out = subprocess.run([sys.executable, str(HERE / "startup.py"), "--joins", joins,
                              "--gops", *gops], check=False, capture_output=True,
                             text=True)
        print("\nstartup.py (issue 3):\n" + out.stdout + out.stderr[-2000:], flush=True)
        text += "\n\nstartup.py:\n" + out.stdout
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "header": header, "rounds": [asdict(r) for r in rounds], "report": text,
        }, indent=2))
    return 0 if all(r.error is None for r in rounds) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, short windows (~2 min)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--relays", nargs="+", choices=list(RELAYS),
                        default=["janus", "aiortc", "camrelay", "camrelay-nogate"])
    parser.add_argument("--no-tap", dest="tap", action="store_false",
                        help="no packet tap (no latency figures)")
    parser.add_argument("--keep-tap", default=None, metavar="DIR",
                        help="keep the tap's records (tap.dtype()) per window in DIR")
    parser.add_argument("--camrelay-workers", type=int, default=None,
                        help="relay.workers of the real server (default: its own default)")
    parser.add_argument("--server-env", nargs="+", default=[], metavar="CAMRELAY_X=V",
                        help="settings of the real server (the harness's own CAMRELAY_* "
                             "variables are not passed on), e.g. CAMRELAY_HEALTH__ENABLED=false")
    parser.add_argument("--no-startup", dest="startup", action="store_false",
                        help="skip scripts/bench/startup.py (issue 3 figures)")
    parser.add_argument("--scenarios", nargs="+", choices=["1cam", "16cams"],
                        default=["1cam", "16cams"],
                        help="1cam: one camera with 1 then 16 viewers; 16cams: 16 cameras "
                             "x 1 viewer (default both)")
    parser.add_argument("--json", default=str(ROOT / "tests/.cache/bench/perf.json"))
    parser.add_argument("--log-dir", default=str(ROOT / "tests/.cache/bench/logs"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.window, args.warmup = 1, 4.0, 1.5
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
