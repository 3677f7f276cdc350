#!/usr/bin/env python3
"""Measure WHEP start-up: time from POST to first decoded frame and to the live picture.

    .venv/bin/python scripts/bench/startup.py [--joins 20] [--gops 2 4] [--size 640x360]
                                              [--camsim] [--cold N]

Runs the real hub with the demo source, the WHEP endpoint and real aiortc viewers, all
in this process, inside a fresh loopback-only network namespace (the script re-executes
itself under ``unshare --net`` like scripts/test; it needs root).  For each GOP length
one viewer keeps playing while ``--joins`` viewers join one after another; prints the
median and worst time to first frame and to the running viewer's picture.

``--real [CLIP ...]`` does it at real camera sizes (720p and 1080p clips from
``clip.py``, GOP 2 s and 4 s, ~3 and ~5 Mbit/s), joins spread over the GOP, with the
aiortc viewers in a child process (``tests/join_viewers.py``) so that they do not
starve the relay, nor it them, on one GIL.  ``--real --chromium`` does it with headless
Chromium pages as the running viewer and the joiners.  The simulated camera has an ONVIF
side (``tests/onvif/fakecam.py``) whose ``SetSynchronizationPoint`` makes the simulator
insert a keyframe within ``SYNC_EVERY`` frames, so joiners ask it for one
(``relay/keyframes.py``).  ``--baseline`` joins each phase a second time without asking
(``WebRtcConfig(ask_keyframes=False)``: the join wait or the rest of the GOP, as
before), the two orders alternating per phase.

``--camsim`` does the same with the RTSP camera simulator (its 640x360 H.264 clips with
GOP 2 s and 4 s) instead of the demo source.  ``--cold N`` measures N cold starts per
GOP: a viewer of an unwatched camera (RTSP set-up inside the WHEP POST), next to the
camera's own RTSP set-up and first-keyframe time measured with PyAV (``camera probe``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def in_netns() -> bool:
    return os.environ.get("CAMRELAY_TEST_NETNS") == "1" and \
        [name for _, name in socket.if_nameindex()] == ["lo"]


def reexec_in_netns() -> int:
    script = ("set -e; ip link set lo up; ip addr add 127.0.0.2/8 dev lo; "
              "export CAMRELAY_TEST_NETNS=1; exec \"$@\"")
    cmd = ["unshare", "--net", "--fork", "--", "bash", "-c", script, "bench",
           sys.executable, *sys.argv]
    return subprocess.call(cmd)


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:4.0f} ms, worst {max(xs) * 1000:4.0f} ms"


async def run(joins: int, gops: list[float], width: int, height: int, fps: int) -> None:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from camrelay.relay.hub import Hub
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from tests.webrtc.conftest import FakeGate, demo, make_app, resolver_for
    from tests.whep_client import measure_joins

    print(f"WHEP start-up, {joins} joins per GOP, demo {width}x{height} @ {fps} fps, "
          f"{os.cpu_count()} CPUs")
    for gop in gops:
        specs = {1: demo(gop, fps=fps, width=width, height=height)}
        hub = Hub(resolver_for(specs), default_sources(), linger=0.2)
        await hub.start()
        app = make_app(hub, FakeGate({1}), WebRtcConfig(host_addresses=("127.0.0.2",)))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                url = str(server.make_url("")).rstrip("/")
                first, live, lags = await measure_joins(
                    http, url, 1, joins, token="tok-alice", running_token="tok-bob",
                    warm_frames=fps)
        finally:
            await server.close()
            await hub.stop()
        print(f"GOP {gop:g} s: first frame {ms(first)}; live picture {ms(live)}; "
              f"lag at live (frames) max {max(lags)}")


async def run_camsim(joins: int, gops: list[float], cold: int) -> None:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from camrelay.relay.hub import Hub, SourceSpec
    from camrelay.relay.probe import probe
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from tests.camsim_fixture import CamSim, ensure_clips
    from tests.webrtc.conftest import FakeGate, make_app, resolver_for
    from tests.whep_client import WhepViewer, measure_joins

    mounts = {2.0: "/h264", 4.0: "/h264gop4"}
    sim = CamSim(ensure_clips())
    print(f"WHEP start-up, RTSP camera simulator (640x360 25 fps H.264), {os.cpu_count()} CPUs")
    try:
        for gop in gops:
            url = sim.url(mounts[gop])
            hub = Hub(resolver_for({1: SourceSpec(url)}), default_sources(), linger=0.0)
            await hub.start()
            app = make_app(hub, FakeGate({1}), WebRtcConfig(host_addresses=("127.0.0.2",)))
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            try:
                async with aiohttp.ClientSession() as http:
                    base = str(server.make_url("")).rstrip("/")
                    if joins:
                        first, live, lags = await measure_joins(
                            http, base, 1, joins, token="tok-alice", running_token="tok-bob")
                        print(f"GOP {gop:g} s joiner: first frame {ms(first)}; live picture "
                              f"{ms(live)}; lag at live (frames) max {max(lags)}")
                    cold_times: list[float] = []
                    camera_times: list[float] = []
                    for _ in range(cold):
                        result = await probe(SourceSpec(url), sample_seconds=0.1)
                        camera_times.append(result.time_to_first_keyframe)
                        while hub.status():  # the previous upstream must be gone
                            await asyncio.sleep(0.05)
                        viewer = await WhepViewer.connect(http, base, 1, "tok-alice")
                        try:
                            await viewer.wait_frames(1, timeout=10)
                            cold_times.append(viewer.time_to_first_frame)
                        finally:
                            await viewer.close()
                    if cold:
                        print(f"GOP {gop:g} s cold start: first frame {ms(cold_times)}; "
                              f"the camera's own RTSP set-up to first keyframe "
                              f"{ms(camera_times)}")
            finally:
                await server.close()
                await hub.stop()
    finally:
        sim.close()


REAL_CLIPS = {  # name: (size, GOP seconds, bit/s) -- real camera sizes, grain (clip.py)
    "j720g2": ("1280x720", 2, 3_000_000),
    "j720g4": ("1280x720", 4, 3_000_000),
    "j1080g2": ("1920x1080", 2, 5_000_000),
    "j1080g4": ("1920x1080", 4, 5_000_000),
}


# the simulated cameras make a keyframe when asked (ONVIF SetSynchronizationPoint) at
# the next of every SYNC_EVERY-th frame: within 160 ms at 25 fps (clip.py sync branches)
SYNC_EVERY = 4


def real_clips(names: list[str]) -> tuple[dict[str, Any], Any]:
    """The named ``REAL_CLIPS`` (encoded once, cached) and a camera simulator serving them."""
    from clip import ensure_variant

    from tests.camsim_fixture import CamSim

    # not tests/.cache/join-clips: the tests' j720g4 has no sync branches (a minute of
    # encoding on every fresh checkout), and the two would re-encode each other's
    out = ROOT / "tests" / ".cache" / "join-clips-sync"
    clips = {}
    for name in names:
        size, gop, bitrate = REAL_CLIPS[name]
        w, h = (int(v) for v in size.split("x"))
        clips[name] = ensure_variant(out, name, w, h, gop, bitrate, sync_every=SYNC_EVERY)
    return clips, CamSim(out)


async def onvif_camera(sim: Any, mount: str) -> tuple[Any, Any]:
    """The simulated camera's ONVIF side (``tests/onvif/fakecam.py``): its profiles'
    stream URI is ``mount`` of ``sim``, and ``SetSynchronizationPoint`` makes the
    simulator insert a keyframe there.  (The fake camera, the relay's keyframe asker.)"""
    from camrelay.onvif.models import Credentials, DeviceTarget
    from camrelay.web.devices import CameraKeyframes
    from tests.onvif.fakecam import FakeCamera

    url = sim.url(mount)
    camera = FakeCamera(stream_uris={"Profile_1": url, "Profile_2": url},
                        on_sync_point=lambda _token: sim.force_keyframe(mount))
    await camera.start()
    target = DeviceTarget(camera.host, camera.port,
                          Credentials(camera.username, camera.password))

    async def locate(_key: Any) -> tuple[Any, str, None]:
        return target, url, None

    return camera, CameraKeyframes(locate)


async def start_relay(url: str, keyframes: Any = None) -> tuple[Any, Any, Any, Any]:
    """A hub with camera 1 at ``url`` (``keyframes``: its keyframe asker) and the WHEP
    app on 127.0.0.1: (hub, the WebRTC config, the egress, the server)."""
    from aiohttp.test_utils import TestServer

    from camrelay.relay.hub import Hub, SourceSpec
    from camrelay.relay.sinks.webrtc import WebRtcConfig
    from camrelay.relay.sources.registry import default_sources
    from camrelay.web.keys import WEBRTC_KEY
    from tests.webrtc.conftest import FakeGate, make_app, resolver_for

    hub = Hub(resolver_for({1: SourceSpec(url)}), default_sources(), linger=0.0,
              keyframes=keyframes)
    await hub.start()
    config = WebRtcConfig(host_addresses=("127.0.0.2",))
    app = make_app(hub, FakeGate({1}), config)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return hub, config, app[WEBRTC_KEY], server


async def start_camera_relay(sim: Any, name: str) -> tuple[Any, Any, Any, Any, Any]:
    """The simulator's ``/name`` as camera 1 with its ONVIF side, the relay asking it
    for keyframes: (hub, config, egress, server, the fake ONVIF camera)."""
    camera, keyframes = await onvif_camera(sim, "/" + name)
    hub, config, egress, server = await start_relay(sim.url("/" + name), keyframes)
    return hub, config, egress, server, camera


def keyframe_outcomes(hub: Any) -> str:
    """The relay's count of its keyframe requests by outcome (answered, missed, failed)."""
    outcomes = [f"{k} {v}" for s in hub.status() for k, v in s.keyframe_requests]
    return ", ".join(outcomes) or "none"


def join_modes(baseline: bool) -> list[tuple[str, bool]]:
    """(label, ``WebRtcConfig.ask_keyframes``): the default, and without asking the
    camera (the join wait alone, as before)."""
    return [("asking the camera", True)] + ([("camera not asked (before)", False)]
                                           if baseline else [])


def joiner_notes(egress: Any) -> list[str]:
    """The relay's counters of the joiner's session (owner 1: tok-alice), one line."""
    notes = []
    for s in egress.sessions():
        if s.owner == 1 and s.fanout is not None:
            c, f = s.counters, s.fanout.counters
            notes.append(f"join_waits {c.join_waits}/{c.join_wait_replays} asked "
                         f"{c.keyframes_asked} burst_units "
                         f"{c.burst_units} replays {c.replays} waited_keyframe "
                         f"{c.waited_keyframe} lost {f.packets_lost} nacks {f.nack_requests} "
                         f"rtx {f.retransmitted} declined {f.nack_declined} missed "
                         f"{f.nack_missed} plis {f.keyframe_requests} behind_skips "
                         f"{f.behind_skips}")
    return notes


async def run_real(joins: int, names: list[str], timeout: float, baseline: bool,
                   verbose: bool) -> None:
    import dataclasses

    from tests.join_viewers import ViewerProcess

    clips, sim = real_clips(names)
    modes = join_modes(baseline)
    print(f"WHEP joins at real camera sizes: RTSP camera simulator, {joins} joins per clip "
          f"spread over the GOP, aiortc viewers decoding every frame in a process of their "
          f"own (the relay in this one), {os.cpu_count()} CPUs; "
          f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
          + ("; each phase joined with and without asking the camera, alternately"
             if baseline else ""))
    try:
        for name in names:
            clip = clips[name]
            gop_frames, period = int(clip["gop"]), int(clip["frames"])
            hub, config, egress, server, camera = await start_camera_relay(sim, name)
            results: dict[str, list[Any]] = {mode: [] for mode, _ in modes}
            notes: dict[str, list[str]] = {mode: [] for mode, _ in modes}
            try:
                base = str(server.make_url("")).rstrip("/")
                viewers = await ViewerProcess.start(
                    base, 1, token="tok-alice", running_token="tok-bob",
                    gop_frames=gop_frames, period=period, timeout=timeout)
                try:
                    for i in range(joins):
                        for mode, ask in (modes if i % 2 == 0 else modes[::-1]):
                            egress.config = dataclasses.replace(config, ask_keyframes=ask)
                            results[mode].append(await viewers.join(i * gop_frames // joins))
                            notes[mode].extend(joiner_notes(egress))
                            await viewers.leave()
                    asked = keyframe_outcomes(hub)  # while the stream still runs
                    gap = await viewers.running_gap()
                finally:
                    await viewers.close()
            finally:
                await server.close()
                await hub.stop()
                await camera.close()
            print(f"{name} ({clip['width']}x{clip['height']}, GOP {gop_frames // 25} s, "
                  f"{int(clip['bitrate']) / 1e6:.1f} Mbit/s); running viewer's longest gap "
                  f"{gap * 1000:.0f} ms; keyframes asked {len(camera.sync_points)} ({asked}); load "
                  f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
            for mode, _ in modes:
                rs = results[mode]
                first = [r.first_frame for r in rs]
                live = [r.live for r in rs if r.live is not None]
                late = [f"{r.phase}" for r in rs if r.live is None or r.live > 1.0]
                print(f"  {mode}: first frame {ms(first)}; live picture "
                      f"{ms(live) if live else '-'}; not live within {timeout:g} s: "
                      f"{len(rs) - len(live)}; over 1 s: {len(late)} of {len(rs)} "
                      f"(GOP phases {','.join(late) or '-'})")
                if verbose:
                    for r, n in zip(rs, notes[mode], strict=False):
                        live_ms = "-" if r.live is None else f"{r.live * 1000:.0f} ms"
                        print(f"    phase {r.phase:3d}: first {r.first_frame * 1000:.0f} ms, "
                              f"live {live_ms}; {n}")
    finally:
        sim.close()


async def chromium_join(browser: Any, base: str, running: Any, phase: int, gop_frames: int,
                        timeout: float, egress: Any = None
                        ) -> tuple[float | None, float | None, str]:
    """One Chromium joiner at ``phase`` frames into the GOP: (first picture, live) in s
    and the relay's counters of its session (with ``egress``)."""
    from tests.webrtc.test_whep_chromium import SAMPLER_JS

    await running.wait_for_function(
        f"(() => {{ const s = window.__samples; if (!s.length) return false;"
        f" return s[s.length - 1].n % {gop_frames} === {phase}; }})()",
        polling=5, timeout=30_000)
    context = await browser.new_context()
    await context.add_init_script("sessionStorage.setItem('camrelay.token', 'tok-alice');"
                                  + SAMPLER_JS)
    page = await context.new_page()
    await page.goto(f"{base}/static/player.html?camera=1&purpose=bench&autoplay=1")
    first: float | None = None
    live: float | None = None
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while live is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            run = await running.evaluate("window.__samples")
            t0, mine = await page.evaluate("[window.camrelayPlayer.postedAt, window.__samples]")
            if not t0 or not mine:
                continue
            first = (mine[0]["t"] - t0) / 1000
            for sample in mine:
                before = [r["n"] for r in run if r["t"] <= sample["t"]]
                if before and sample["n"] >= before[-1] - 2:
                    live = (sample["t"] - t0) / 1000
                    break
    finally:
        note = "; ".join(joiner_notes(egress)) if egress is not None else ""
        await page.evaluate("window.camrelayPlayer.stop()")
        await context.close()
    return first, live, note


async def run_real_chromium(joins: int, names: list[str], timeout: float,
                            baseline: bool, verbose: bool = False) -> None:
    """``--real --chromium``: the running viewer and the joiners are Chromium pages."""
    import dataclasses

    from playwright.async_api import async_playwright

    from tests.webrtc.test_whep_chromium import CHROMIUM, CHROMIUM_ARGS, SAMPLER_JS

    clips, sim = real_clips(names)
    modes = join_modes(baseline)
    print(f"Chromium joins at real camera sizes: RTSP camera simulator, {joins} joins per "
          f"clip spread over the GOP, headless Chromium pages (running viewer and joiners), "
          f"{os.cpu_count()} CPUs; load "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
          + ("; each phase joined both ways, alternately" if baseline else ""))
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name in names:
                clip = clips[name]
                gop_frames = int(clip["gop"])
                hub, config, egress, server, camera = await start_camera_relay(sim, name)
                results: dict[str, list[tuple[int, float | None, float | None, str]]] = {
                    mode: [] for mode, _ in modes}
                try:
                    base = str(server.make_url("")).rstrip("/")
                    context = await browser.new_context()
                    await context.add_init_script(
                        "sessionStorage.setItem('camrelay.token', 'tok-bob');" + SAMPLER_JS)
                    running = await context.new_page()
                    await running.goto(
                        f"{base}/static/player.html?camera=1&purpose=bench&autoplay=1")
                    await running.wait_for_function("window.__samples.length > 10",
                                                    timeout=30_000)
                    for i in range(joins):
                        phase = i * gop_frames // joins
                        for mode, ask in (modes if i % 2 == 0 else modes[::-1]):
                            egress.config = dataclasses.replace(config, ask_keyframes=ask)
                            first, live, note = await chromium_join(
                                browser, base, running, phase, gop_frames, timeout, egress)
                            results[mode].append((phase, first, live, note))
                    asked = keyframe_outcomes(hub)  # while the stream still runs
                    await context.close()
                finally:
                    await server.close()
                    await hub.stop()
                    await camera.close()
                print(f"{name} ({clip['width']}x{clip['height']}, GOP {gop_frames // 25} s, "
                      f"{int(clip['bitrate']) / 1e6:.1f} Mbit/s); keyframes asked "
                      f"{len(camera.sync_points)} ({asked}); load "
                      f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
                for mode, _ in modes:
                    rs = results[mode]
                    first_s = [f for _, f, _, _ in rs if f is not None]
                    live_s = [v for _, _, v, _ in rs if v is not None]
                    late = [str(ph) for ph, _, v, _ in rs if v is None or v > 1.0]
                    print(f"  {mode}: first picture {ms(first_s) if first_s else '-'}; "
                          f"live picture {ms(live_s) if live_s else '-'}; not live within "
                          f"{timeout:g} s: {len(rs) - len(live_s)}; over 1 s: {len(late)} of "
                          f"{len(rs)} (GOP phases {','.join(late) or '-'})")
                    if verbose:
                        for ph, f, v, note in rs:
                            print(f"    phase {ph:3d}: first "
                                  f"{'-' if f is None else f'{f * 1000:.0f} ms'}, live "
                                  f"{'-' if v is None else f'{v * 1000:.0f} ms'}; {note}")
            await browser.close()
    finally:
        sim.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--gops", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--camsim", action="store_true",
                        help="the RTSP camera simulator instead of the demo source")
    parser.add_argument("--cold", type=int, default=0, help="cold starts per GOP (--camsim)")
    parser.add_argument("--real", nargs="*", choices=sorted(REAL_CLIPS), metavar="CLIP",
                        help="real camera sizes: 720p/1080p clips with grain (default: all)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="--real: give up waiting for the live picture after this")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="--real: one line per join (aiortc: with the relay's counters)")
    parser.add_argument("--baseline", action="store_true",
                        help="--real: also join each phase without asking the camera "
                             "for a keyframe (the join wait alone), alternately")
    parser.add_argument("--chromium", action="store_true",
                        help="--real: the viewers are headless Chromium pages")
    args = parser.parse_args()
    if not in_netns():
        return reexec_in_netns()
    width, height = (int(v) for v in args.size.split("x"))
    if args.real is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        names = args.real or sorted(REAL_CLIPS)
        if args.chromium:
            asyncio.run(run_real_chromium(args.joins, names, args.timeout, args.baseline,
                                          args.verbose))
        else:
            asyncio.run(run_real(args.joins, names, args.timeout, args.baseline,
                                 args.verbose))
    elif args.camsim:
        asyncio.run(run_camsim(args.joins, args.gops, args.cold))
    else:
        asyncio.run(run(args.joins, args.gops, width, height, args.fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
