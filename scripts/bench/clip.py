"""The benchmark's camera clip: 720p25 H.264 constrained baseline, ~3 Mbit/s, GOP 2 s.

    .venv/bin/python scripts/bench/clip.py [--out tests/.cache/bench-clips] [--force]

Written in the format of ``scripts/make_clips.py`` (``<name>.au`` records and a
``clips.json`` manifest) into its own directory, so ``scripts/camsim.py --clips DIR``
serves it as ``/bench`` and the test clips are untouched.  The picture is
``camrelay.relay.sources.pattern`` (frame number burnt into the top band) with moving
grain below the band: the plain pattern compresses to a few hundred kbit/s, far from
what a real 720p camera sends, and the relay's cost per viewer grows with packets.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from camrelay.relay.sources.pattern import make_frame

NAME = "bench"
VERSION = 1
WIDTH, HEIGHT, FPS, GOP_SECONDS = 1280, 720, 25, 2
BITRATE = 3_000_000
SECONDS = 8
DEFAULT_OUT = ROOT / "tests" / ".cache" / "bench-clips"


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    band = HEIGHT // 10 + 4  # keep the frame-number band clean
    grain = rng.integers(-24, 25, size=(HEIGHT * 2, WIDTH * 2, 1), dtype=np.int16)
    out = []
    for i in range(count):
        img = make_frame(i, WIDTH, HEIGHT).astype(np.int16)
        dy, dx = (i * 7) % HEIGHT, (i * 13) % WIDTH
        img[band:] += grain[dy + band:dy + HEIGHT, dx:dx + WIDTH]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def encode(path: Path, frames: int) -> int:
    """Encode the clip; returns its size in bytes."""
    gop = GOP_SECONDS * FPS
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height = WIDTH, HEIGHT
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1, FPS)
    cc.framerate = Fraction(FPS, 1)
    cc.gop_size = gop
    cc.max_b_frames = 0
    cc.bit_rate = BITRATE
    kbit = BITRATE // 1000
    cc.options = {
        "profile": "baseline", "preset": "veryfast",
        "x264-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
                        f"vbv-maxrate={kbit}:vbv-bufsize={kbit}"),
    }
    tmp = path.with_suffix(".tmp")
    count = size = 0
    with tmp.open("wb") as out:
        def write(packets: list[av.Packet]) -> None:
            nonlocal count, size
            for packet in packets:
                data = bytes(packet)
                out.write(struct.pack(">IB", len(data), 1 if packet.is_keyframe else 0))
                out.write(data)
                count += 1
                size += len(data)

        for i, img in enumerate(_frames(frames)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = cc.time_base
            write(cc.encode(frame))
        write(cc.encode(None))
    if count != frames:
        raise SystemExit(f"{path.name}: encoder gave {count} packets for {frames} frames")
    tmp.replace(path)
    return size


def ensure_clip(out: Path = DEFAULT_OUT, *, force: bool = False) -> dict[str, object]:
    """Make the clip unless it is already there; returns its manifest entry."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "clips.json"
    frames = SECONDS * FPS
    if manifest_path.exists() and not force:
        try:
            old = json.loads(manifest_path.read_text())
            if old.get("bench_version") == VERSION and (out / f"{NAME}.au").exists():
                return dict(old["clips"][NAME])
        except (OSError, ValueError, KeyError):
            pass
    size = encode(out / f"{NAME}.au", frames)
    entry = {
        "file": f"{NAME}.au", "codec": "h264", "profile": "constrained baseline",
        "width": WIDTH, "height": HEIGHT, "fps": FPS, "gop": GOP_SECONDS * FPS,
        "frames": frames, "bitrate": round(size * 8 / SECONDS),
    }
    manifest = {"version": 2, "bench_version": VERSION, "frames": frames,
                "clips": {NAME: entry}}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    entry = ensure_clip(args.out, force=args.force)
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
