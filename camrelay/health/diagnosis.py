"""Video-quality diagnosis (视频质量诊断) of one decoded, downscaled picture.

Pure functions over an RGB ``uint8`` array of shape (h, w, 3), already downscaled
(:mod:`camrelay.health.picture` decodes and scales a keyframe), plus
:class:`FrozenTracker`, the only state: the previous sample of each camera.

Each finding carries the value it measured and the threshold it crossed, so an
operator can judge it.  What is measured (luma is BT.601 on 0..255):

- ``no_signal``: one flat colour — the spread (standard deviation) of luma and of each
  colour channel below ``flat_std``; ``black`` when that colour is also dark.
- ``overexposed`` / ``underexposed``: the share of pixels at or above 245 / the mean luma.
- ``blur``: the variance of the Laplacian of luma.
- ``occluded``: the share of the picture's blocks (a 6x8 grid) that are flat and dark —
  a hand, a cover or dirt on the lens — when not the whole picture is.
- ``colour_cast``: the distance of the mean chroma (U, V) from grey.
- ``noise``: the noise level estimated as the median response of Immerkær's operator
  (robust to edges, which are sparse; snow is everywhere).
- ``frozen``: the mean absolute luma difference against the previous sample below
  ``frozen_tolerance`` for ``frozen_samples`` samples in a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from camrelay.settings import Thresholds

FindingKind = Literal["black", "no_signal", "frozen", "blur", "occluded", "overexposed",
                      "underexposed", "colour_cast", "noise"]

Picture = npt.NDArray[np.uint8]




@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    value: float  # what was measured
    threshold: float  # what it was compared with

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "value": round(self.value, 3),
                "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class Measures:
    """Every measurement of one picture, findings or not."""

    luma_mean: float
    luma_std: float
    colour_std: float  # largest spread of the three colour channels
    bright_share: float
    laplacian_var: float
    flat_dark_share: float
    cast: float
    noise: float


_BLOCKS = (6, 8)  # rows, columns of the occlusion grid


def luma(picture: Picture) -> npt.NDArray[np.float32]:
    rgb = picture.astype(np.float32)
    y: npt.NDArray[np.float32] = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1]
                                  + 0.114 * rgb[..., 2])
    return y


def measure(picture: Picture, thresholds: Thresholds) -> Measures:
    if picture.ndim != 3 or picture.shape[2] != 3 or min(picture.shape[:2]) < 16:
        raise ValueError("diagnosis needs an RGB picture of at least 16x16 pixels")
    rgb = picture.astype(np.float32)
    y = luma(picture)
    r, g, b = (float(c) for c in rgb.reshape(-1, 3).mean(axis=0))
    u = -0.169 * r - 0.331 * g + 0.5 * b  # mean chroma: linear in the channel means
    v = 0.5 * r - 0.419 * g - 0.081 * b
    lap = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1])
    # Immerkær: [[1,-2,1],[-2,4,-2],[1,-2,1]]; Gaussian noise of sigma s gives |response|
    # with median 0.6745 * 6 * s.
    imm = (y[:-2, :-2] + y[:-2, 2:] + y[2:, :-2] + y[2:, 2:]
           - 2 * (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]) + 4 * y[1:-1, 1:-1])
    rows, cols = _BLOCKS
    h, w = y.shape
    bh, bw = h // rows, w // cols
    blocks = y[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw).swapaxes(1, 2)
    flat_dark = ((blocks.std(axis=(2, 3)) < thresholds.occluded_block_std)
                 & (blocks.mean(axis=(2, 3)) < thresholds.occluded_block_luma))
    return Measures(
        luma_mean=float(y.mean()),
        luma_std=float(y.std()),
        colour_std=float(rgb.reshape(-1, 3).std(axis=0).max()),
        bright_share=float((y >= 245).mean()),
        laplacian_var=float(lap.var()),
        flat_dark_share=float(flat_dark.mean()),
        cast=float(np.hypot(u, v)),
        noise=float(np.median(np.abs(imm)) / (0.6745 * 6)),
    )


def diagnose(picture: Picture, thresholds: Thresholds) -> list[Finding]:
    """The findings on one picture (frozen aside: see :class:`FrozenTracker`)."""
    m = measure(picture, thresholds)
    t = thresholds
    if m.luma_std < t.flat_std and m.colour_std < t.flat_std:
        # A flat picture has no detail to judge: it is the one finding.
        if m.luma_mean < t.black_luma:
            return [Finding("black", m.luma_mean, t.black_luma)]
        return [Finding("no_signal", m.luma_std, t.flat_std)]
    found: list[Finding] = []
    if m.bright_share > t.overexposed_share:
        found.append(Finding("overexposed", m.bright_share, t.overexposed_share))
    if m.luma_mean < t.underexposed_luma:
        found.append(Finding("underexposed", m.luma_mean, t.underexposed_luma))
    if m.noise > t.noise_sigma:
        found.append(Finding("noise", m.noise, t.noise_sigma))
    elif m.laplacian_var < t.blur_laplacian and not found:
        # noise makes a picture "sharp"; a washed-out or a dark one has no edges to measure
        found.append(Finding("blur", m.laplacian_var, t.blur_laplacian))
    if m.flat_dark_share > t.occluded_share and m.luma_mean >= t.underexposed_luma:
        found.append(Finding("occluded", m.flat_dark_share, t.occluded_share))
    if m.cast > t.colour_cast:
        found.append(Finding("colour_cast", m.cast, t.colour_cast))
    return found


class FrozenTracker:
    """Per camera: is the picture unchanged (within a tolerance) across samples?"""

    def __init__(self) -> None:
        self._last: dict[int, npt.NDArray[np.float32]] = {}
        self._same: dict[int, int] = {}

    def sample(self, camera_id: int, picture: Picture, thresholds: Thresholds) -> Finding | None:
        y = luma(picture)
        previous = self._last.get(camera_id)
        self._last[camera_id] = y
        if previous is None or previous.shape != y.shape:
            self._same[camera_id] = 1
            return None
        diff = float(np.abs(y - previous).mean())
        if diff >= thresholds.frozen_tolerance or float(y.std()) < thresholds.flat_std:
            self._same[camera_id] = 1  # a flat picture is "no signal", not "frozen"
            return None
        self._same[camera_id] = self._same.get(camera_id, 1) + 1
        if self._same[camera_id] >= thresholds.frozen_samples:
            return Finding("frozen", diff, thresholds.frozen_tolerance)
        return None

    def forget(self, camera_id: int) -> None:
        """The stream stopped: samples across the gap say nothing about freezing."""
        self._last.pop(camera_id, None)
        self._same.pop(camera_id, None)
