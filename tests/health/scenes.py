"""Synthetic camera clips for the diagnosis tests and benchmark, encoded with PyAV.

``scene(i)`` is a natural-looking road view: a sky gradient, a textured ground that
drifts (the camera sways), lane markings, buildings and cars that move, and sensor
noise.  Each fault is made from it the way it happens at a camera: a lost signal is a
flat colour, a defocused lens a blurred scene, a hand or a cover a dark flat patch.
``encode`` runs the frames through libx264 and ``keyframes`` decodes the keyframes back,
so the diagnosis sees what a camera's stream would give it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: int) -> npt.NDArray[np.float32]:
    """Random texture with features about ``scale`` pixels across (blocky noise, smoothed)."""
    small = rng.normal(0, 1, (h // scale + 3, w // scale + 3)).astype(np.float32)
    big = np.kron(small, np.ones((scale, scale), dtype=np.float32))[:h + 2 * scale, :w + 2 * scale]
    k = scale
    c = np.cumsum(np.cumsum(np.pad(big, ((1, 0), (1, 0))), axis=0), axis=1)
    box = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)
    out: npt.NDArray[np.float32] = box[:h, :w]
    return out


class Scene:
    def __init__(self, width: int = 640, height: int = 360, seed: int = 7) -> None:
        self.w, self.h = width, height
        rng = np.random.default_rng(seed)
        self.rng = rng
        u = width / 640
        self.texture = (_smooth_field(rng, height + 64, width + 64, max(2, round(3 * u))) * 22
                        + _smooth_field(rng, height + 64, width + 64, max(4, round(12 * u))) * 18)
        self.buildings = [(int(rng.integers(0, width - 60 * u)), int(rng.integers(30, 90) * u),
                           int(rng.integers(30, 70) * u), tuple(int(x) for x in rng.integers(60, 190, 3)))
                          for _ in range(9)]

    def frame(self, i: int) -> Frame:
        w, h = self.w, self.h
        u = w / 640
        img = np.empty((h, w, 3), dtype=np.float32)
        horizon = int(h * 0.38)
        sky = np.linspace(150, 215, horizon, dtype=np.float32)[:, None]
        img[:horizon, :, 0] = sky * 0.62
        img[:horizon, :, 1] = sky * 0.78
        img[:horizon, :, 2] = sky
        dx, dy = (i // 2) % 48, (i // 5) % 32  # the camera sways
        ground = 112 + self.texture[dy:dy + h - horizon, dx:dx + w]
        img[horizon:, :, 0] = ground * 1.02
        img[horizon:, :, 1] = ground * 1.05
        img[horizon:, :, 2] = ground * 0.9
        for x, bh, bw, colour in self.buildings:
            top = max(0, horizon - bh)
            img[top:horizon, x:x + bw] = colour
            img[top + 4:horizon - 4:8, x + 3:x + bw - 3:7] = 235  # windows
        for lane in range(3):  # lane markings, moving toward the viewer
            y0 = horizon + int((h - horizon) * (lane + 1) / 4)
            for k in range(-1, 9):
                x0 = int((k * 90 * u + i * 3 * u) % (w + 90 * u)) - int(45 * u)
                img[y0:y0 + max(2, int(3 * u)), max(0, x0):max(0, x0 + int(40 * u))] = 240
        for car in range(5):  # cars
            x0 = int((car * 150 * u + i * (4 + car) * u) % (w + 80 * u)) - int(60 * u)
            y0 = horizon + int((h - horizon) * (0.15 + 0.17 * car))
            img[y0:y0 + int(22 * u), max(0, x0):max(0, x0 + int(48 * u))] = (
                (200, 30, 30), (30, 30, 40), (230, 230, 230), (40, 70, 160), (190, 180, 60))[car]
        img += self.rng.normal(0, 2.0, img.shape).astype(np.float32)  # sensor noise
        out: Frame = np.clip(img, 0, 255).astype(np.uint8)
        return out


def _resample(frame: Frame, w: int, h: int) -> Frame:
    out: Frame = av.VideoFrame.from_ndarray(frame, format="rgb24").to_ndarray(
        width=w, height=h, format="rgb24")
    return out


def fault(name: str, scene: Scene) -> Callable[[int], Frame]:
    """The frame maker of one condition ("normal" or a fault)."""
    w, h = scene.w, scene.h
    rng = np.random.default_rng(11)
    still = scene.frame(0)

    def flat(colour: tuple[int, int, int]) -> Callable[[int], Frame]:
        def make(_i: int) -> Frame:
            img = np.full((h, w, 3), colour, dtype=np.float32)
            img += rng.normal(0, 0.8, img.shape)
            return np.clip(img, 0, 255).astype(np.uint8)
        return make

    def scaled(gain: tuple[float, float, float], offset: float = 0.0) -> Callable[[int], Frame]:
        def make(i: int) -> Frame:
            img = scene.frame(i).astype(np.float32) * np.array(gain, dtype=np.float32) + offset
            return np.clip(img, 0, 255).astype(np.uint8)
        return make

    def blurred(i: int) -> Frame:
        return _resample(_resample(scene.frame(i), w // 12, h // 12), w, h)

    def covered(i: int) -> Frame:
        img = scene.frame(i).astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        hand = ((xx - w * 0.3) / (w * 0.6)) ** 2 + ((yy - h * 0.95) / (h * 0.85)) ** 2 < 1
        img[hand] = (38, 30, 28)
        img[hand] += rng.normal(0, 1.0, (int(hand.sum()), 3))
        return np.clip(img, 0, 255).astype(np.uint8)

    def snow(i: int) -> Frame:
        img = scene.frame(i).astype(np.float32) * 0.5 + 64
        img += rng.uniform(-90, 90, (h, w, 1))
        return np.clip(img, 0, 255).astype(np.uint8)

    makers: dict[str, Callable[[int], Frame]] = {
        "normal": scene.frame,
        "frozen": lambda _i: still,
        "black": flat((6, 6, 6)),
        "single_colour": flat((16, 40, 190)),  # the blue screen of a lost input
        "blurred": blurred,
        "covered": covered,
        "overexposed": scaled((3.2, 3.2, 3.2), 40),
        "underexposed": scaled((0.16, 0.16, 0.16)),
        "colour_cast": scaled((1.05, 0.75, 0.3)),
        "noisy": snow,
    }
    return makers[name]


def encode(make: Callable[[int], Frame], frames: int, width: int, height: int,
           gop: int = 5, fps: int = 25) -> bytes:
    """An H.264 elementary stream (Annex-B) of ``frames`` pictures, a keyframe every ``gop``."""
    out = io.BytesIO()
    cc: Any = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
    cc.time_base = Fraction(1, fps)
    cc.framerate = Fraction(fps, 1)
    cc.options = {"preset": "ultrafast", "crf": "20",
                  "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"}
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(make(i), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in cc.encode(frame):
            out.write(bytes(packet))
    for packet in cc.encode(None):
        out.write(bytes(packet))
    return out.getvalue()


def keyframe_units(stream: bytes) -> Iterator[bytes]:
    """The keyframe access units of an Annex-B stream, each with its parameter sets."""
    parser: Any = av.CodecContext.create("h264", "r")
    for packet in parser.parse(stream) + parser.parse(None):
        if packet.is_keyframe:
            yield bytes(packet)
