#!/usr/bin/env python3
"""Camera audio's CPU: per viewer next to video's, and AAC→Opus once per camera.

    .venv/bin/python scripts/bench/audio.py [--rounds 3] [--window 8] [--viewers 1 8 16]

Needs root (a fresh loopback-only network namespace, as perf.py: ``lo`` and ``bench0``
with 127.0.0.2, the only ICE address).  The camera simulator (scripts/camsim.py) serves
the 720p25 ~3 Mbit/s clip of scripts/bench/clip.py as its ``h264`` clip, so its ``/pcma``
mount is that clip with a 440 Hz tone as G.711 A-law (PCMA/8000) and ``/aac`` the same
with the tone as AAC (16 kHz mono).  One real ``camrelay serve`` (a store set up through
the CLI, a viewer's token, every view authorised and journalled) with two cameras:
camera 1 at ``/pcma``, camera 2 at ``/aac`` (RTSP over UDP).  camrelay's RTSP client sets
up the camera's audio whatever the viewers ask, and both streams are kept running for
the whole run (``relay.linger_seconds`` 60, a first viewer of each before measuring), so
the windows differ only in what is forwarded per viewer.

Each round, for every N of ``--viewers``: N counting viewers (scripts/bench/viewers.py,
no decoding) of camera 1 asking **video only**, and N asking **video and audio** (the
camera's PCMA passed through: aiortc's audio sender per viewer), the two windows in an
order that alternates from one N and round to the next.  Then camera 2, the same two
kinds with 1 and with the largest N viewers: the audio viewers get Opus made once for the
camera (the transcoder starts with its first listener and stops with its last).  Relay
CPU is utime + stime of the server's process tree over the window.

Figures (medians over the rounds' valid windows): the marginal CPU per viewer is the least-squares slope of
the CPU against N, for video-only viewers and for video+audio viewers; audio's own
per-viewer cost is their difference, shown as a ratio to video's slope of the same run.
The AAC→Opus transcode, once per camera: the CPU of camera 2 with N audio viewers less
with N video-only viewers, less N times audio's per-viewer cost; and (when 1 is among
``--viewers``) camera 2's audio cost with one listener less camera 1's with one (both
one aiortc audio sender at 50 packets/s, so the difference is the transcoder).  A window in which any
viewer got < 24 video fps, or an audio viewer no audio, is marked INVALID.  At the end the
journal is read back: every view closed, the audio ones recording their codec.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from camrelay_relay import Server, build_store, cli, journal_check
from perf import MIN_FPS, Viewers, in_own_netns
from procstat import cpu_seconds
from relays import free_port

SERVER_ENV = {"CAMRELAY_HEALTH__ENABLED": "false", "CAMRELAY_RELAY__LINGER_SECONDS": "60"}
WARMUP = 2.0  # seconds after every viewer has media, before the window


def clip_dir(entry: dict[str, Any], source: Path) -> Path:
    """A clips directory whose ``h264`` clip is the bench clip (the simulator's audio
    mounts play its ``h264`` clip)."""
    out = Path(tempfile.mkdtemp(prefix="bench-audio-clips-"))
    shutil.copy(source / str(entry["file"]), out / "h264.au")
    manifest = {"version": 2, "clips": {"h264": dict(entry, file="h264.au")}}
    (out / "clips.json").write_text(json.dumps(manifest))
    return out


def window(relay: Any, camera: int, n: int, audio: bool, seconds: float, log_dir: Path
           ) -> dict[str, Any]:
    viewers = Viewers(relay, [camera] * n, decode=False, clip_frames=200, log_dir=log_dir,
                      audio=audio)
    try:
        time.sleep(WARMUP)  # after the first media (a measurement window, not a signal)
        m0, cpu0 = viewers.mark(), cpu_seconds(relay.pid)
        t0 = time.monotonic()
        time.sleep(seconds)  # the measurement window
        m1, cpu1 = viewers.mark(), cpu_seconds(relay.pid)
        elapsed = time.monotonic() - t0
    finally:
        viewers.close()
    span = m1["t"] - m0["t"]
    pairs = list(zip(m0["viewers"], m1["viewers"]))
    fps = min((b["frames"] - a["frames"]) / span for a, b in pairs)
    pps = statistics.mean((b.get("audio_packets", 0) - a.get("audio_packets", 0)) / span
                          for a, b in pairs)
    valid = fps >= MIN_FPS and (not audio or min(
        b["audio_packets"] - a["audio_packets"] for a, b in pairs) > 0)
    return {"cpu": (cpu1 - cpu0) * 1000 / elapsed, "fps_min": fps, "audio_pps": pps,
            "valid": valid}


def slope(points: list[tuple[int, float]]) -> float:
    xs, ys = zip(*points)
    return float(statistics.linear_regression(xs, ys).slope)


def run(args: argparse.Namespace) -> int:
    from clip import DEFAULT_OUT, ensure_clip

    from tests.camsim_fixture import CamSim

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    entry = ensure_clip(DEFAULT_OUT)
    clips = clip_dir(entry, DEFAULT_OUT)
    sim = CamSim(clips)
    server = None
    views = 0
    results: dict[tuple[str, int, bool], list[dict[str, Any]]] = {}
    try:
        with (log_dir / "audio.log").open("ab") as log:
            port = free_port()
            store = build_store(sim.url("/pcma"), 2, port, log, others_url=sim.url("/aac"))
            server = Server(store.copy(), port, log, extra=SERVER_ENV)
        cams = {"pcma": store.camera_ids[0], "aac": store.camera_ids[1]}
        relay = SimpleNamespace(name="camrelay", signal="whep", url=server.url,
                                token=store.viewer_token, pid=server.pid,
                                camera_id=lambda c: c)
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"audio.py rounds={args.rounds} window={args.window:g}s viewers={args.viewers}; "
              f"{os.cpu_count()} CPUs; load {load}; clip {entry['width']}x{entry['height']}"
              f"@{entry['fps']} {int(entry['bitrate']) / 1e6:.2f} Mbit/s", flush=True)
        for camera in cams.values():  # both streams up before measuring; they linger
            window(relay, camera, 1, True, 1.0, log_dir)
            views += 1
        top = max(args.viewers)
        plan = [("pcma", n) for n in args.viewers] + [("aac", 1), ("aac", top)]
        flip = False
        for r in range(args.rounds):
            for mount, n in plan:
                flip = not flip
                for audio in ((False, True) if flip else (True, False)):
                    w = window(relay, cams[mount], n, audio, args.window, log_dir)
                    views += n
                    results.setdefault((mount, n, audio), []).append(w)
                    print(f"round {r + 1} {mount} {n:2d} viewers "
                          f"{'video+audio' if audio else 'video only '}: "
                          f"{w['cpu']:6.1f} ms/s, min {w['fps_min']:.1f} fps, "
                          f"audio {w['audio_pps']:.1f} pkt/s per viewer"
                          f"{'' if w['valid'] else '  INVALID'}", flush=True)
        print(f"load at the end {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
              flush=True)
        check = journal_check(server.url, store.admin_token, views)
        rows = json.loads(cli("audit", "list", "--kind", "view", "--json", "--limit",
                              "100000", url=server.url, token=store.admin_token))
        codecs: dict[str, int] = {}
        for row in rows:
            codecs[str(row.get("audio"))] = codecs.get(str(row.get("audio")), 0) + 1
    finally:
        if server is not None:
            server.stop()
        sim.close()
        shutil.rmtree(clips, ignore_errors=True)

    def cpus(key: tuple[str, int, bool]) -> list[float]:
        """The valid windows' CPU (all of them, marked below, when none is valid)."""
        valid = [w["cpu"] for w in results[key] if w["valid"]]
        return valid or [w["cpu"] for w in results[key]]

    def med(key: tuple[str, int, bool]) -> float:
        return statistics.median(cpus(key))

    def spread(key: tuple[str, int, bool]) -> str:
        got = cpus(key)
        mark = "" if any(w["valid"] for w in results[key]) else " NO VALID WINDOW"
        return f"{statistics.median(got):6.1f} ({min(got):.1f}–{max(got):.1f}, " \
            f"{len(got)} windows){mark}"

    video = slope([(n, med(("pcma", n, False))) for n in args.viewers])
    both = slope([(n, med(("pcma", n, True))) for n in args.viewers])
    audio = both - video
    lines = ["relay CPU, ms/s, median (min–max) of rounds; camera 1 (G.711 PCMA):"]
    for n in args.viewers:
        extra = (med(("pcma", n, True)) - med(("pcma", n, False))) / n
        lines.append(f"  {n:2d} viewers: video only {spread(('pcma', n, False))}, "
                     f"video+audio {spread(('pcma', n, True))}; audio {extra:.2f} per viewer")
    lines += [
        f"marginal CPU per viewer (slope over {args.viewers} viewers):",
        f"  video only:          {video:.2f} ms/s",
        f"  video + PCMA audio:  {both:.2f} ms/s",
        f"  the audio's own:     {audio:.2f} ms/s  ({audio / video:.2f}× a viewer's video)",
        "camera 2 (AAC, Opus made once for the camera):",
    ]
    for n in (1, top):
        a, v = med(("aac", n, True)), med(("aac", n, False))
        lines.append(f"  {n:2d} viewers: video only {spread(('aac', n, False))}, "
                     f"video+audio {spread(('aac', n, True))}; difference {a - v:.1f}; "
                     f"less {n} × audio per viewer: transcode ≈ {a - v - n * audio:.1f} ms/s")
    if 1 in args.viewers:  # one Opus listener against one PCMA listener: the same sender
        transcode = (med(("aac", 1, True)) - med(("aac", 1, False))) - \
            (med(("pcma", 1, True)) - med(("pcma", 1, False)))
        lines.append(f"  transcode, 1 Opus listener less 1 PCMA listener: {transcode:.1f} ms/s")
    invalid = sum(not w["valid"] for ws in results.values() for w in ws)
    lines += [f"windows INVALID: {invalid}", check.line(views),
              f"view records by audio codec: {codecs}"]
    print("\n".join(lines), flush=True)
    return 0 if invalid == 0 and check.ok(views) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--log-dir", default=str(ROOT / "tests" / ".cache" / "bench-logs"))
    args = parser.parse_args()
    if len(set(args.viewers)) < 2:
        parser.error("--viewers needs at least two different counts (a slope)")
    return in_own_netns(args, run)


if __name__ == "__main__":
    sys.exit(main())
