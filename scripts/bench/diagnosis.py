#!/usr/bin/env python3
"""Diagnosis of one 1080p keyframe: decode alone against decode + all checks (CPU time).

    .venv/bin/python scripts/bench/diagnosis.py [--runs 60]

Encodes a 1080p clip of the test scene (tests/health/scenes.py) with libx264, then, in
one run and alternating, times with ``time.process_time`` (a) PyAV decoding its keyframe
and (b) decoding it, scaling it down and running every check (diagnose + frozen tracker).
Prints the medians and their ratio: the checks' cost is (b - a) against a.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from camrelay.health.diagnosis import FrozenTracker, diagnose
from camrelay.health.picture import decode_keyframe, downscale
from camrelay.settings import Thresholds
from tests.health.scenes import Scene, encode, keyframe_units


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    scene = Scene(1920, 1080)
    unit = next(keyframe_units(encode(scene.frame, 2, 1920, 1080, gop=25)))
    thresholds, tracker = Thresholds(), FrozenTracker()
    decode_only: list[float] = []
    full: list[float] = []
    for _ in range(args.runs):
        t0 = time.process_time()
        decode_keyframe(unit)
        t1 = time.process_time()
        picture = downscale(decode_keyframe(unit))
        diagnose(picture, thresholds)
        tracker.sample(1, picture, thresholds)
        t2 = time.process_time()
        decode_only.append(t1 - t0)
        full.append(t2 - t1)
    a, b = statistics.median(decode_only), statistics.median(full)
    print(f"keyframe {len(unit)} bytes, {args.runs} runs")
    print(f"decode alone         median {a * 1000:.2f} ms CPU")
    print(f"decode + all checks  median {b * 1000:.2f} ms CPU")
    print(f"checks add           {(b - a) * 1000:.2f} ms = {(b - a) / a:.2f} x the decode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
