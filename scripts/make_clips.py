#!/usr/bin/env python3
"""Pre-encode the camera simulator's looping clips (run with the venv's python).

    .venv/bin/python scripts/make_clips.py [--out tests/.cache/clips] [--seconds 8]

Each clip is 640x360 at 25 fps showing ``camrelay.relay.sources.pattern``: frame
number ``i`` (0 .. frames-1) burnt in as binary blocks and digits.  Frame numbers are
unique within one loop of a clip and start again at 0 when ``scripts/camsim.py`` loops
it (the RTP timestamps keep increasing).  A clip begins with an IDR picture and has no
B-frames, so the simulator can loop it without re-encoding.

Output, in the output directory:
  ``<name>.au``   records of ``>I`` length, ``>B`` flags (1 = keyframe), Annex-B access unit
  ``<name>.sync/<m>.au``  sync branches (below), same records
  ``clips.json``  a manifest: version, and per clip codec, profile, size, fps, gop, frames
                  (and ``sync_every`` for a clip with sync branches)

Sync branches model a camera that inserts an IDR on request (ONVIF
``SetSynchronizationPoint``) and keeps its regular keyframe schedule: branch ``m`` (every
``sync_every``-th frame that is not a regular keyframe) is frames ``m`` .. next regular
keyframe - 1 of the same pictures, encoded by a new encoder with the same settings, so it
starts with an IDR (SPS/PPS in band) and hands over to the main clip at the regular
keyframe.  ``scripts/camsim.py`` switches to one when asked (``KEY <mount>``).  Only
``h264gop4`` has them (``SYNC_EVERY``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from camrelay.relay.sources.pattern import make_frame

VERSION = 3
WIDTH, HEIGHT, FPS = 640, 360, 25

# name -> (encoder, profile, gop seconds)
CLIPS: dict[str, tuple[str, str, int]] = {
    "h264": ("libx264", "baseline", 2),
    "h264gop4": ("libx264", "baseline", 4),
    "main": ("libx264", "main", 2),
    "h265": ("libx265", "main", 2),
}
SYNC_EVERY = {"h264gop4": 4}  # clips with sync branches: a branch start every N frames


def new_encoder(encoder: str, profile: str, gop_seconds: int) -> av.VideoCodecContext:
    gop = gop_seconds * FPS
    cc = av.CodecContext.create(encoder, "w")
    cc.width, cc.height = WIDTH, HEIGHT
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1, FPS)
    cc.framerate = Fraction(FPS, 1)
    cc.gop_size = gop
    cc.max_b_frames = 0
    cc.bit_rate = 800_000
    if encoder == "libx264":
        cc.options = {
            "profile": profile, "preset": "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1",
        }
    else:
        cc.options = {
            "preset": "ultrafast",
            "x265-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:"
                            "repeat-headers=1:log-level=error"),
        }
    return cc


def picture(i: int) -> av.VideoFrame:
    """Frame ``i`` of every test clip (frame number burnt in), as the encoders take it."""
    frame = av.VideoFrame.from_ndarray(make_frame(i, WIDTH, HEIGHT), format="rgb24")
    return frame.reformat(format="yuv420p")


def encode_records(path: Path, cc: av.VideoCodecContext,
                   pictures: Iterable[tuple[int, av.VideoFrame]], frames: int
                   ) -> tuple[list[bool], int]:
    """Encode ``(pts, picture)`` pairs with ``cc`` into records at ``path`` (written
    whole or not at all); the keyframe flag of each record and the bytes of video."""
    tmp = path.with_suffix(".tmp")
    keys: list[bool] = []
    size = 0
    with tmp.open("wb") as out:
        def write(packets: list[av.Packet]) -> None:
            nonlocal size
            for packet in packets:
                data = bytes(packet)
                out.write(struct.pack(">IB", len(data), 1 if packet.is_keyframe else 0))
                out.write(data)
                keys.append(bool(packet.is_keyframe))
                size += len(data)

        for pts, frame in pictures:
            frame.pts = pts
            frame.time_base = cc.time_base
            write(cc.encode(frame))
        write(cc.encode(None))
    if len(keys) != frames:
        raise SystemExit(f"{path.name}: encoder gave {len(keys)} packets for {frames} frames")
    tmp.replace(path)
    return keys, size


def sync_starts(keys: Sequence[bool], every: int) -> dict[int, int]:
    """Sync branch start -> its end (the next regular keyframe, or the clip's end)."""
    starts: dict[int, int] = {}
    for m in range(every, len(keys), every):
        if not keys[m]:
            starts[m] = next((k for k in range(m + 1, len(keys)) if keys[k]), len(keys))
    return starts


def encode_sync_branches(clip: Path, keys: Sequence[bool], every: int,
                         encoder: Callable[[], av.VideoCodecContext],
                         pictures: Callable[[int], av.VideoFrame]) -> int:
    """Write the sync branches of the clip at ``clip`` (whose records have ``keys``) into
    ``<clip>.sync/<m>.au``; ``encoder()`` makes a fresh encoder with the clip's settings,
    ``pictures(i)`` gives frame ``i`` again.  Returns the number of branches."""
    folder = clip.with_suffix(".sync")
    tmp = clip.with_suffix(".sync-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    starts = sync_starts(keys, every)
    for m, end in starts.items():
        branch, _ = encode_records(tmp / f"{m}.au", encoder(),
                                   ((i, pictures(i)) for i in range(m, end)), end - m)
        if not branch[0] or any(branch[1:]):
            raise SystemExit(f"{clip.name}: sync branch {m} is not one IDR then P-frames")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return len(starts)


def encode_clip(path: Path, encoder: str, profile: str, gop_seconds: int, frames: int,
                sync_every: int = 0) -> None:
    pictures: dict[int, av.VideoFrame] = {}  # kept for the sync branches (~70 MB)

    def kept(i: int) -> av.VideoFrame:
        frame = pictures[i] = picture(i)
        return frame

    keys, _ = encode_records(path, new_encoder(encoder, profile, gop_seconds),
                             ((i, kept(i) if sync_every else picture(i)) for i in range(frames)),
                             frames)
    shutil.rmtree(path.with_suffix(".sync"), ignore_errors=True)
    if sync_every:
        encode_sync_branches(path, keys, sync_every,
                             lambda: new_encoder(encoder, profile, gop_seconds),
                             pictures.__getitem__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/.cache/clips"))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "clips.json"
    frames = args.seconds * FPS
    if manifest_path.exists() and not args.force:
        try:
            old = json.loads(manifest_path.read_text())
            if old.get("version") == VERSION and old.get("frames") == frames and all(
                (out / f"{name}.au").exists() for name in CLIPS
            ) and all((out / f"{name}.sync").is_dir() for name in SYNC_EVERY):
                print(f"clips up to date in {out}")
                return 0
        except (OSError, ValueError):
            pass
    clips = {}
    for name, (encoder, profile, gop_seconds) in CLIPS.items():
        every = SYNC_EVERY.get(name, 0)
        encode_clip(out / f"{name}.au", encoder, profile, gop_seconds, frames, every)
        clips[name] = {
            "file": f"{name}.au", "codec": "h265" if encoder == "libx265" else "h264",
            "profile": profile, "width": WIDTH, "height": HEIGHT, "fps": FPS,
            "gop": gop_seconds * FPS, "frames": frames,
        }
        if every:
            clips[name]["sync_every"] = every
    manifest = {"version": VERSION, "frames": frames, "clips": clips}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    print(f"wrote {len(clips)} clips to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
