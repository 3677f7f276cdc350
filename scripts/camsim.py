#!/usr/bin/python3
"""Camera simulator: an RTSP server that loops pre-encoded clips (run with Debian's python3).

    /usr/bin/python3 scripts/camsim.py --clips tests/.cache/clips [--port 0]
        [--user admin --password secret] [--flaky-seconds 3] [--host 127.0.0.1]

Needs GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0, python3-gst-1.0) and the clips
made by ``scripts/make_clips.py``.  Nothing is encoded at serve time: each client gets its
own pipeline that feeds the stored access units into an ``appsrc`` with timestamps that
keep increasing across loops (frame numbers burnt into the picture restart at 0 on each
loop; they are unique within one loop, see make_clips.py).

Mounts (one per clip, plus):
  /h264 /h264gop4 /main /h265   the clips as they are (SPS/PPS in band and in the SDP)
  /auth     /h264 behind RTSP digest auth, on its own port (``--user``/``--password`` or CAMSIM_USER/CAMSIM_PASSWORD)
  /flaky    /h264, but every client is disconnected ``--flaky-seconds`` after its PLAY
  /oob      /h264 with SPS/PPS only in the SDP (sprop-parameter-sets), never in band
  /pcma     /h264 with a 440 Hz tone as G.711 A-law (PCMA/8000, 20 ms packets)
  /aac      /h264 with a 440 Hz tone as AAC (MPEG4-GENERIC, 16 kHz mono)
  /backchannel  /h264 with an ONVIF audio back-channel (G.711 µ-law to the camera) for a
            DESCRIBE with ``Require: www.onvif.org/ver20/backchannel`` (the other mounts
            answer it 551 Option not supported)
  /flakyback  /backchannel, but every client is disconnected as on /flaky

Forced keyframes (ONVIF ``SetSynchronizationPoint``): a clip made with sync branches
(``sync_every`` in its manifest entry, ``<name>.sync/<m>.au``, see make_clips.py) can
switch, at frame ``m``, to branch ``m``: the same pictures from an IDR up to the next
regular keyframe, where the main clip resumes.  The line ``KEY <mount>`` on stdin makes
every client of that mount switch at the next branch start (or regular keyframe, which
serves as well) at or after the next frame it sends.  Requests while one is pending or a
branch plays are merged into it.

stdin, one line each: ``KEY <mount>``; end of input stops the simulator.

stdout, one line each, flushed:
  ``READY <port> auth=<port>`` once listening (/auth is served on the second port);  ``PLAY <mount> <client-ip>`` for every PLAY request;
  ``CUT <mount> <client-ip>`` when /flaky or /flakyback disconnects a client;
  ``GONE <mount> <client-ip>`` when a client that played the mount closes its connection;
  ``BACKCHANNEL <mount> <peak dBFS>`` about twice a second while a client sends sound on
  a back-channel (the loudest sample of that half second; ``-inf`` for digital silence);
  ``KEYED <mount> <frame index in clip>`` when a requested keyframe is pushed to a client
  (one line per client; the index is ``m`` of the branch, or of the regular keyframe);
  ``NOKEY <mount>`` for ``KEY`` on a mount without sync branches.
The simulator exits on SIGTERM/SIGINT or when its stdin is closed (its parent went away).
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

Units = list[tuple[bytes, bool]]


def load_clip(path: Path) -> list[tuple[bytes, bool]]:
    data = path.read_bytes()
    units: list[tuple[bytes, bool]] = []
    off = 0
    while off < len(data):
        length, flags = struct.unpack_from(">IB", data, off)
        off += 5
        units.append((data[off:off + length], bool(flags & 1)))
        off += length
    if not units or not units[0][1]:
        raise SystemExit(f"{path}: clip must start with a keyframe")
    return units


def split_nals(au: bytes) -> list[bytes]:
    """Annex-B access unit -> NAL units without start codes."""
    nals: list[bytes] = []
    i, n, start = 0, len(au), -1
    while i + 3 <= n:
        if au[i] == 0 and au[i + 1] == 0 and (au[i + 2] == 1 or (
                i + 4 <= n and au[i + 2] == 0 and au[i + 3] == 1)):
            sc = 3 if au[i + 2] == 1 else 4
            if start >= 0:
                nals.append(au[start:i])
            start = i + sc
            i += sc
            continue
        i += 1
    if start >= 0:
        nals.append(au[start:])
    return [nal for nal in nals if nal]


def to_avc(units: list[tuple[bytes, bool]]) -> tuple[list[tuple[bytes, bool]], bytes]:
    """Annex-B H.264 -> length-prefixed samples without SPS/PPS/AUD, and the avcC record."""
    sps = pps = None
    out: list[tuple[bytes, bool]] = []
    for au, key in units:
        sample = b""
        for nal in split_nals(au):
            kind = nal[0] & 0x1F
            if kind == 7:
                sps = sps or nal
            elif kind == 8:
                pps = pps or nal
            elif kind == 9:
                continue
            else:
                sample += struct.pack(">I", len(nal)) + nal
        out.append((sample, key))
    if sps is None or pps is None:
        raise SystemExit("H.264 clip without SPS/PPS")
    avcc = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
    avcc += bytes([1]) + struct.pack(">H", len(pps)) + pps
    return out, avcc


_SAY_LOCK = threading.Lock()  # streaming threads print too


def say(line: str) -> None:
    with _SAY_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def load_branches(clip: Path, units: Units) -> dict[int, Units]:
    """The sync branches of the clip at ``clip`` (``<name>.sync/<m>.au``): start -> units."""
    branches: dict[int, Units] = {}
    folder = clip.with_suffix(".sync")
    for path in sorted(folder.glob("*.au")) if folder.is_dir() else []:
        m, branch = int(path.stem), load_clip(path)
        end = m + len(branch)
        if not 0 < m < len(units) or end > len(units) or (end < len(units) and not units[end][1]):
            raise SystemExit(f"{path}: branch does not end at a regular keyframe")
        branches[m] = branch
    return branches


class Feed:
    """What one client's pipeline is sent: the clip, looped, with a frame counter ``n``
    that keeps increasing (its timestamps), and the sync branch it plays, if any."""

    def __init__(self, mount: str, units: Units, branches: dict[int, Units]) -> None:
        self.mount = mount
        self.units = units
        self.branches = branches
        self.n = 0
        self.branch: tuple[int, Units] | None = None
        self.wanted = False  # a keyframe was asked for and not pushed yet
        self._lock = threading.Lock()

    def want_key(self) -> None:
        """Switch at the next branch start or keyframe (merged with one pending/playing)."""
        with self._lock:
            if self.branch is None:
                self.wanted = True

    def next_unit(self) -> tuple[int, bytes, bool, bool]:
        """(frame counter, access unit, keyframe, keyed: the requested keyframe)."""
        with self._lock:
            n, idx = self.n, self.n % len(self.units)
            self.n += 1
            if self.branch is not None and not (
                    self.branch[0] <= idx < self.branch[0] + len(self.branch[1])):
                self.branch = None  # back on the main clip at its regular keyframe
            keyed = False
            if self.wanted and self.branch is None and (
                    self.units[idx][1] or idx in self.branches):
                self.wanted, keyed = False, True
                if not self.units[idx][1]:
                    self.branch = (idx, self.branches[idx])
            if self.branch is not None:
                data, key = self.branch[1][idx - self.branch[0]]
            else:
                data, key = self.units[idx]
        return n, data, key, keyed


FEEDS: dict[str, set[Feed]] = {}  # mount -> feeds of the pipelines prepared now
_FEEDS_LOCK = threading.Lock()


def feeds_of(mount: str) -> list[Feed]:
    with _FEEDS_LOCK:
        return list(FEEDS.get(mount, ()))


def feed_clip(factory: GstRtspServer.RTSPMediaFactory, mount: str, units: Units, fps: int,
              caps: str, chain: str, branches: dict[int, Units] | None = None) -> None:
    """Make ``factory`` serve one pipeline per client: appsrc (stored units, looped,
    switching to a sync branch on request) ! parse ! RTP payloader."""
    frame_ns = Gst.SECOND // fps

    def on_need_data(appsrc: Gst.Element, _length: int, feed: Feed) -> None:
        n, data, key, keyed = feed.next_unit()
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = buf.dts = n * frame_ns
        buf.duration = frame_ns
        if not key:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        appsrc.emit("push-buffer", buf)
        if keyed:
            say(f"KEYED {mount} {n % len(units)}")

    def on_media_configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feed = Feed(mount, units, branches or {})
        appsrc.connect("need-data", on_need_data, feed)
        with _FEEDS_LOCK:
            FEEDS.setdefault(mount, set()).add(feed)

        def forget(_media: GstRtspServer.RTSPMedia) -> None:
            with _FEEDS_LOCK:
                FEEDS.get(mount, set()).discard(feed)

        media.connect("unprepared", forget)

    factory.set_launch(f"( appsrc name=src format=time is-live=false caps=\"{caps}\" ! {chain} )")
    factory.set_shared(False)
    factory.set_eos_shutdown(False)
    factory.connect("media-configure", on_media_configure)


class ClipFactory(GstRtspServer.RTSPMediaFactory):
    """A mount of a stored clip (:func:`feed_clip`)."""

    def __init__(self, mount: str, units: Units, fps: int, caps: str, chain: str,
                 branches: dict[int, Units] | None = None) -> None:
        super().__init__()
        feed_clip(self, mount, units, fps, caps, chain, branches)


# what the camera's loudspeaker gets: ONVIF back-channel audio (G.711 µ-law), decoded and
# measured, never played (the depayloader's sink is named as gst-rtsp-server requires)
BACKCHANNEL = ('( capsfilter caps="application/x-rtp, media=audio, payload=0, '
               'clock-rate=8000, encoding-name=PCMU" name=depay_backchannel ! rtppcmudepay ! '
               'mulawdec ! audioconvert ! audio/x-raw,format=S16LE,channels=1 ! '
               'fakesink name=speaker signal-handoffs=true sync=false async=false )')
BACKCHANNEL_REPORT_NS = Gst.SECOND // 2


class BackchannelFactory(GstRtspServer.RTSPOnvifMediaFactory):
    """A clip with an ONVIF audio back-channel (``Require: www.onvif.org/ver20/backchannel``):
    what a client sends on it is reported as ``BACKCHANNEL <mount> <peak dBFS>`` about
    twice a second (the loudest sample of that half second; -inf for silence)."""

    def __init__(self, mount: str, units: Units, fps: int, caps: str, chain: str,
                 branches: dict[int, Units] | None = None) -> None:
        super().__init__()
        feed_clip(self, mount, units, fps, caps, chain, branches)
        self.set_backchannel_launch(BACKCHANNEL)
        self.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
        self.mount = mount
        self.connect("media-configure", self._on_backchannel)

    def _on_backchannel(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        speaker = media.get_element().get_by_name("speaker")
        if speaker is not None:  # the media of a DESCRIBE with the Require header
            speaker.connect("handoff", self._on_sound, {"peak": 0, "since": None})

    def _on_sound(self, _sink: Gst.Element, buf: Gst.Buffer, _pad: Gst.Pad,
                  state: dict[str, int | None]) -> None:
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            return
        try:
            samples = array.array("h", bytes(info.data))
        finally:
            buf.unmap(info)
        if sys.byteorder != "little":
            samples.byteswap()
        peak = max(state["peak"] or 0, max((abs(v) for v in samples), default=0))
        now = time.monotonic_ns()
        since = state["since"]
        if since is None:
            state["since"] = since = now
        if now - since >= BACKCHANNEL_REPORT_NS:
            level = 20 * math.log10(peak / 32768) if peak else float("-inf")
            say(f"BACKCHANNEL {self.mount} {level:.1f}")
            peak, state["since"] = 0, now
        state["peak"] = peak


_TONE = "audiotestsrc wave=sine freq=440 volume=0.5 is-live=false ! audioconvert ! audioresample"
AUDIO = {
    # 20 ms packets (50 a second), as cameras send G.711; not one packet per MTU
    "pcma": f"{_TONE} ! audio/x-raw,rate=8000,channels=1 ! alawenc ! "
            "rtppcmapay name=pay1 pt=8 max-ptime=20000000",
    "aac": f"{_TONE} ! audio/x-raw,rate=16000,channels=1 ! avenc_aac ! "
           "rtpmp4gpay name=pay1 pt=97",
}


def mount_of(ctx: GstRtspServer.RTSPContext) -> str:
    path = ctx.uri.abspath if ctx.uri is not None else "?"
    parts = [p for p in path.split("/") if p and not p.startswith("stream=")]
    return "/" + "/".join(parts)


def client_ip(client: GstRtspServer.RTSPClient) -> str:
    conn = client.get_connection()
    return conn.get_ip() if conn is not None else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RTSP camera simulator")
    parser.add_argument("--clips", type=Path, default=Path("tests/.cache/clips"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default=os.environ.get("CAMSIM_USER", "admin"))
    parser.add_argument("--password", default=os.environ.get("CAMSIM_PASSWORD", "secret"))
    parser.add_argument("--flaky-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    Gst.init(None)
    manifest = json.loads((args.clips / "clips.json").read_text())
    # an ONVIF server: it answers the ONVIF Require header (back-channel) on every mount,
    # 551 Option not supported where the mount has none
    server = GstRtspServer.RTSPOnvifServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    # /auth lives on a second listener whose only mount needs digest credentials:
    # GstRTSPAuth answers 401 (with the challenge) only to requests that have no role
    # at all, so anonymous access and protected mounts cannot share one server.
    auth_server = GstRtspServer.RTSPServer()
    auth_server.set_address(args.host)
    auth_server.set_service("0")
    auth_mounts = auth_server.get_mount_points()
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    user_token = GstRtspServer.RTSPToken()
    user_token.set_string("media.factory.role", "user")
    auth.add_digest(args.user, args.password, user_token)
    auth_server.set_auth(auth)

    def allow(factory: GstRtspServer.RTSPMediaFactory, role: str) -> None:
        structure = Gst.Structure.from_string(
            f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )[0]
        factory.add_role_from_structure(structure)

    chains = {
        "h264": ("video/x-h264,stream-format=byte-stream,alignment=au",
                 "h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"),
        "h265": ("video/x-h265,stream-format=byte-stream,alignment=au",
                 "h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1"),
    }
    factories: dict[str, ClipFactory] = {}
    for name, clip in manifest["clips"].items():
        units = load_clip(args.clips / clip["file"])
        branches = load_branches(args.clips / clip["file"], units) if clip.get(
            "sync_every") else {}
        caps, chain = chains[clip["codec"]]
        factory = ClipFactory(f"/{name}", units, int(clip["fps"]), caps, chain, branches)
        allow(factory, "anonymous")
        allow(factory, "user")
        mounts.add_factory(f"/{name}", factory)
        factories[name] = factory
        if name == "h264":
            for extra in ("flaky",):
                f = ClipFactory(f"/{extra}", units, int(clip["fps"]), caps, chain, branches)
                allow(f, "anonymous")
                allow(f, "user")
                mounts.add_factory(f"/{extra}", f)
            private = ClipFactory("/auth", units, int(clip["fps"]), caps, chain, branches)
            allow(private, "user")
            auth_mounts.add_factory("/auth", private)
            avc_units, avcc = to_avc(units)
            avc_caps = ("video/x-h264,stream-format=avc,alignment=au,"
                        f"codec_data=(buffer){avcc.hex()}")
            avc_branches = {m: to_avc(b)[0] for m, b in branches.items()}
            oob = ClipFactory("/oob", avc_units, int(clip["fps"]), avc_caps,
                              "rtph264pay name=pay0 pt=96 config-interval=0", avc_branches)
            allow(oob, "anonymous")
            allow(oob, "user")
            mounts.add_factory("/oob", oob)
            for extra in ("backchannel", "flakyback"):
                backchannel = BackchannelFactory(f"/{extra}", units, int(clip["fps"]), caps,
                                                 chain, branches)
                allow(backchannel, "anonymous")
                allow(backchannel, "user")
                mounts.add_factory(f"/{extra}", backchannel)
            # /h264 with a camera's sound: a 440 Hz tone as G.711 A-law or as AAC
            for extra, sound in AUDIO.items():
                f = ClipFactory(f"/{extra}", units, int(clip["fps"]), caps,
                                f"{chain}  {sound}", branches)
                allow(f, "anonymous")
                allow(f, "user")
                mounts.add_factory(f"/{extra}", f)

    flaky_ms = max(100, int(args.flaky_seconds * 1000))

    played: dict[GstRtspServer.RTSPClient, list[tuple[str, str]]] = {}

    def on_play(client: GstRtspServer.RTSPClient, ctx: GstRtspServer.RTSPContext) -> None:
        mount = mount_of(ctx)
        ip = client_ip(client)
        played.setdefault(client, []).append((mount, ip))
        say(f"PLAY {mount} {ip}")
        if mount in ("/flaky", "/flakyback"):
            def cut() -> bool:
                say(f"CUT {mount} {ip}")
                client.close()
                return False
            GLib.timeout_add(flaky_ms, cut)

    def on_closed(client: GstRtspServer.RTSPClient) -> None:
        for mount, ip in played.pop(client, []):
            say(f"GONE {mount} {ip}")

    def on_client(_server: object, client: GstRtspServer.RTSPClient) -> None:
        client.connect("play-request", on_play)
        client.connect("closed", on_closed)

    server.connect("client-connected", on_client)
    auth_server.connect("client-connected", on_client)
    loop = GLib.MainLoop()
    if server.attach(None) == 0 or auth_server.attach(None) == 0:
        print(f"camsim: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    # expire dead sessions so closed clients release their pipelines
    def cleanup() -> bool:
        server.get_session_pool().cleanup()
        auth_server.get_session_pool().cleanup()
        return True

    GLib.timeout_add_seconds(2, cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)

    keyable = {f"/{name}" for name, clip in manifest["clips"].items() if clip.get("sync_every")}
    if "/h264" in keyable:
        keyable |= {"/flaky", "/auth", "/oob", "/backchannel", "/flakyback", *(
            f"/{extra}" for extra in AUDIO)}

    def on_line(line: str) -> None:
        words = line.split()
        if len(words) == 2 and words[0] == "KEY":
            mount = "/" + words[1].lstrip("/")
            if mount not in keyable:
                say(f"NOKEY {mount}")
                return
            for feed in feeds_of(mount):
                feed.want_key()
        elif words:
            print(f"camsim: unknown command {line.strip()!r}", file=sys.stderr)

    pending = bytearray()

    def on_stdin(_fd: int, condition: GLib.IOCondition) -> bool:
        try:
            chunk = os.read(sys.stdin.fileno(), 4096) if condition & GLib.IO_IN else b""
        except OSError:
            chunk = b""
        if not chunk:
            loop.quit()
            return False
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            on_line(line.decode(errors="replace"))
        return True

    if not sys.stdin.isatty():
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    say(f"READY {server.get_bound_port()} auth={auth_server.get_bound_port()}")
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
