"""A synthetic test picture with a machine-readable frame number, and its reader.

The top band of the picture is a row of ``2 + FRAME_BITS`` equal cells spanning the
whole width: a white reference cell, a black reference cell, then the frame number in
binary, most significant bit first (white = 1).  The geometry is proportional to the
picture, so the number survives lossy coding and downscaling; :func:`read_frame_number`
reads it back from a decoded picture of any size.  Below the band the frame number and
a clock are drawn in large digits for humans, over a moving gradient and a moving box.

Pure numpy, no I/O: used by the demo source, ``scripts/make_clips.py`` and tests.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

FRAME_BITS = 20
FRAME_MODULO = 1 << FRAME_BITS
_CELLS = 2 + FRAME_BITS
_BAND_FRACTION = 10  # band height = height // 10

U8Array = npt.NDArray[np.uint8]

# 3x5 bitmap digits and a colon, rows top to bottom
_FONT: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    ":": ("000", "010", "000", "010", "000"),
    " ": ("000", "000", "000", "000", "000"),
}
_GLYPHS = {
    ch: np.array([[c == "1" for c in row] for row in rows], dtype=bool)
    for ch, rows in _FONT.items()
}


def _cell_bounds(width: int, index: int) -> tuple[int, int]:
    return (index * width) // _CELLS, ((index + 1) * width) // _CELLS


def draw_text(img: U8Array, text: str, x: int, y: int, scale: int, value: int = 255) -> None:
    """Draw digits/colons with the 3x5 font into ``img`` (H x W or H x W x C), clipped."""
    h, w = img.shape[:2]
    for i, ch in enumerate(text):
        glyph = _GLYPHS.get(ch, _GLYPHS[" "])
        big = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        x0 = x + i * 4 * scale
        y1, x1 = min(h, y + big.shape[0]), min(w, x0 + big.shape[1])
        if x0 >= w or y >= h:
            break
        region = big[: y1 - y, : x1 - x0]
        img[y:y1, x0:x1][region] = value


def draw_frame_number(img: U8Array, number: int) -> None:
    """Burn ``number`` (mod 2**FRAME_BITS) into the top band of ``img`` in place."""
    h, w = img.shape[:2]
    band = max(2, h // _BAND_FRACTION)
    number %= FRAME_MODULO
    for index in range(_CELLS):
        x0, x1 = _cell_bounds(w, index)
        if index == 0:
            on = True
        elif index == 1:
            on = False
        else:
            on = bool((number >> (FRAME_BITS - 1 - (index - 2))) & 1)
        img[0:band, x0:x1] = 255 if on else 0


def _luma(img: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 3:
        if arr.shape[2] >= 3:
            return 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
        return arr[..., 0]
    return arr


def read_frame_number(img: npt.NDArray[np.generic]) -> int:
    """Read the burnt-in frame number from a decoded picture (gray, RGB or the Y plane).

    Raises ``ValueError`` if the reference cells are not clearly white and black
    (not our pattern, or a badly damaged picture).
    """
    y = _luma(img)
    h, w = y.shape[:2]
    band = max(2, h // _BAND_FRACTION)
    values: list[float] = []
    for index in range(_CELLS):
        x0, x1 = _cell_bounds(w, index)
        # sample the middle half of the cell to stay clear of blurred edges
        cx0, cx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
        cy0, cy1 = band // 4, max(band // 4 + 1, band - band // 4)
        values.append(float(y[cy0:cy1, cx0:max(cx0 + 1, cx1)].mean()))
    white, black = values[0], values[1]
    if white - black < 64:
        raise ValueError("no frame number pattern in this picture")
    threshold = (white + black) / 2
    number = 0
    for value in values[2:]:
        number = (number << 1) | (1 if value > threshold else 0)
    return number


def make_frame(number: int, width: int, height: int, *, clock: float | None = None) -> U8Array:
    """An RGB24 test picture for frame ``number`` (H x W x 3, uint8)."""
    if width < 64 or height < 48:
        raise ValueError("test pattern needs at least 64x48 pixels")
    xs = np.arange(width, dtype=np.int32)
    ys = np.arange(height, dtype=np.int32)
    shift = number * 4
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = ((xs[None, :] + shift) % 256).astype(np.uint8)
    img[..., 1] = ((ys[:, None] * 2 + shift // 2) % 256).astype(np.uint8)
    img[..., 2] = 96
    # a moving box
    box = max(8, height // 6)
    bx = (number * 6) % max(1, width - box)
    by = height // 2 + int((height // 4 - box // 2) * np.sin(number / 12.0))
    img[by:by + box, bx:bx + box] = (255, 255, 0)
    draw_frame_number(img, number)
    band = max(2, height // _BAND_FRACTION)
    scale = max(2, height // 40)
    draw_text(img, f"{number % FRAME_MODULO:07d}", scale * 2, band + scale * 2, scale)
    if clock is not None:
        t = time.localtime(clock)
        draw_text(img, f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}", scale * 2,
                  band + scale * 9, scale)
    return img
