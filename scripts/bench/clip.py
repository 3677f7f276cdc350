"""The benchmark's camera clip: 720p25 H.264 constrained baseline, ~3 Mbit/s, GOP 2 s.

    .venv/bin/python scripts/bench/clip.py [--out tests/.cache/bench-clips] [--force]
    .venv/bin/python scripts/bench/clip.py --out DIR --name j720g4 --size 1280x720 \
        --gop 4 --bitrate 3000000 [--seconds 8] [--sync-every 4]

The second form adds (or keeps) one more clip of that size, GOP and bitrate to ``DIR``'s
manifest; ``scripts/bench/startup.py --real`` and ``tests/webrtc/test_whep_join_live.py``
use it for real camera sizes.  ``--sync-every N`` (0: none) also writes its sync branches
(``<name>.sync/``, see ``scripts/make_clips.py``) so ``scripts/camsim.py`` can insert a
keyframe on request (``KEY <mount>``, ONVIF ``SetSynchronizationPoint``); the branches
cost about one encode of a GOP's frames for every N frames of the clip.

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
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from camrelay.relay.sources.pattern import make_frame
from scripts.make_clips import encode_records, encode_sync_branches

NAME = "bench"
VERSION = 1
WIDTH, HEIGHT, FPS, GOP_SECONDS = 1280, 720, 25, 2
BITRATE = 3_000_000
SECONDS = 8
DEFAULT_OUT = ROOT / "tests" / ".cache" / "bench-clips"


class Pictures:
    """Frame ``i`` of the clip, as often as asked (the sync branches encode it again)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.band = height // 10 + 4  # keep the frame-number band clean
        rng = np.random.default_rng(6)
        self.grain = rng.integers(-24, 25, size=(height * 2, width * 2, 1), dtype=np.int16)

    def __call__(self, i: int) -> av.VideoFrame:
        width, height, band = self.width, self.height, self.band
        img = make_frame(i, width, height).astype(np.int16)
        dy, dx = (i * 7) % height, (i * 13) % width
        img[band:] += self.grain[dy + band:dy + height, dx:dx + width]
        rgb = np.clip(img, 0, 255).astype(np.uint8)
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def new_encoder(width: int, height: int, gop_seconds: int, bitrate: int
                ) -> av.VideoCodecContext:
    gop = gop_seconds * FPS
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height = width, height
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1, FPS)
    cc.framerate = Fraction(FPS, 1)
    cc.gop_size = gop
    cc.max_b_frames = 0
    cc.bit_rate = bitrate
    kbit = bitrate // 1000
    cc.options = {
        "profile": "baseline", "preset": "veryfast",
        "x264-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:"
                        f"vbv-maxrate={kbit}:vbv-bufsize={kbit}"),
    }
    return cc


def encode(path: Path, frames: int, width: int = WIDTH, height: int = HEIGHT,
           gop_seconds: int = GOP_SECONDS, bitrate: int = BITRATE, sync_every: int = 0) -> int:
    """Encode the clip (and its sync branches, every ``sync_every`` frames, if not 0);
    returns its size in bytes (without the branches)."""
    pictures = Pictures(width, height)
    keys, size = encode_records(path, new_encoder(width, height, gop_seconds, bitrate),
                                ((i, pictures(i)) for i in range(frames)), frames)
    shutil.rmtree(path.with_suffix(".sync"), ignore_errors=True)
    if sync_every:
        encode_sync_branches(path, keys, sync_every,
                             lambda: new_encoder(width, height, gop_seconds, bitrate), pictures)
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


def ensure_variant(out: Path, name: str, width: int, height: int, gop_seconds: int,
                   bitrate: int, seconds: int = SECONDS, *, sync_every: int = 0
                   ) -> dict[str, object]:
    """Add clip ``name`` (that size, GOP and bitrate; sync branches every ``sync_every``
    frames unless 0) to ``out``'s manifest unless there."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "clips.json"
    manifest: dict[str, Any] = {"version": 2, "frames": seconds * FPS, "clips": {}}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            pass
    wanted = {"width": width, "height": height, "gop": gop_seconds * FPS,
              "frames": seconds * FPS, "target_bitrate": bitrate}
    old = manifest["clips"].get(name)
    if old and all(old.get(k) == v for k, v in wanted.items()) and (
            old.get("sync_every", 0) == sync_every) and (out / old["file"]).exists() and (
            not sync_every or (out / old["file"]).with_suffix(".sync").is_dir()):
        return dict(old)
    size = encode(out / f"{name}.au", seconds * FPS, width, height, gop_seconds, bitrate,
                  sync_every)
    entry = {"file": f"{name}.au", "codec": "h264", "profile": "constrained baseline",
             "fps": FPS, **wanted, "bitrate": round(size * 8 / seconds)}
    if sync_every:
        entry["sync_every"] = sync_every
    manifest["clips"][name] = entry
    manifest["frames"] = max(int(c["frames"]) for c in manifest["clips"].values())
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--name", help="add this clip (with --size, --gop, --bitrate)")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}")
    parser.add_argument("--gop", type=int, default=GOP_SECONDS, help="seconds")
    parser.add_argument("--bitrate", type=int, default=BITRATE, help="bit/s")
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--sync-every", type=int, default=0, metavar="N",
                        help="with --name: sync branches (a keyframe on request) every N "
                             "frames; 0 (default) none")
    args = parser.parse_args()
    if args.sync_every < 0:
        parser.error("--sync-every must be 0 or more")
    if args.name:
        width, height = (int(v) for v in args.size.split("x"))
        entry = ensure_variant(args.out, args.name, width, height, args.gop, args.bitrate,
                               args.seconds, sync_every=args.sync_every)
        print(json.dumps(entry))
        return 0
    entry = ensure_clip(args.out, force=args.force)
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
