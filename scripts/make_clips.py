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
  ``clips.json``  a manifest: version, and per clip codec, profile, size, fps, gop, frames
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from camrelay.relay.sources.pattern import make_frame

VERSION = 2
WIDTH, HEIGHT, FPS = 640, 360, 25

# name -> (encoder, profile, gop seconds)
CLIPS: dict[str, tuple[str, str, int]] = {
    "h264": ("libx264", "baseline", 2),
    "h264gop4": ("libx264", "baseline", 4),
    "main": ("libx264", "main", 2),
    "h265": ("libx265", "main", 2),
}


def encode_clip(path: Path, encoder: str, profile: str, gop_seconds: int, frames: int) -> None:
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
    tmp = path.with_suffix(".tmp")
    count = 0
    with tmp.open("wb") as out:
        def write(packets: list[av.Packet]) -> None:
            nonlocal count
            for packet in packets:
                data = bytes(packet)
                out.write(struct.pack(">IB", len(data), 1 if packet.is_keyframe else 0))
                out.write(data)
                count += 1

        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(make_frame(i, WIDTH, HEIGHT), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = cc.time_base
            write(cc.encode(frame))
        write(cc.encode(None))
    if count != frames:
        raise SystemExit(f"{path.name}: encoder gave {count} packets for {frames} frames")
    tmp.replace(path)


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
            ):
                print(f"clips up to date in {out}")
                return 0
        except (OSError, ValueError):
            pass
    clips = {}
    for name, (encoder, profile, gop_seconds) in CLIPS.items():
        encode_clip(out / f"{name}.au", encoder, profile, gop_seconds, frames)
        clips[name] = {
            "file": f"{name}.au", "codec": "h265" if encoder == "libx265" else "h264",
            "profile": profile, "width": WIDTH, "height": HEIGHT, "fps": FPS,
            "gop": gop_seconds * FPS, "frames": frames,
        }
    manifest = {"version": VERSION, "frames": frames, "clips": clips}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    print(f"wrote {len(clips)} clips to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
