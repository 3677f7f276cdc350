"""The diagnosis thresholds (``[health.diagnosis]``): a value, no numpy, read by settings."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``[health.diagnosis]``: when a measurement becomes a finding."""

    flat_std: float = 4.0  # luma and colour spread below this: one flat colour
    black_luma: float = 24.0  # a flat picture this dark is "black"
    overexposed_share: float = 0.45  # share of pixels at >= 245
    underexposed_luma: float = 35.0  # mean luma below this
    blur_laplacian: float = 60.0  # variance of the Laplacian below this
    occluded_share: float = 0.3  # share of flat, dark blocks
    occluded_block_std: float = 6.0  # a block "flat" below this spread
    occluded_block_luma: float = 70.0  # and "dark" below this mean
    colour_cast: float = 28.0  # mean chroma distance from grey (0..181)
    noise_sigma: float = 5.0  # estimated noise level
    frozen_tolerance: float = 1.0  # mean absolute luma difference
    frozen_samples: int = 2  # samples in a row, the first included, to call it frozen

    def overridden(self, changes: dict[str, float]) -> Thresholds:
        """These thresholds with ``changes`` (names checked when settings load)."""
        typed = {k: (int(v) if k == "frozen_samples" else float(v)) for k, v in changes.items()}
        return replace(self, **typed)  # type: ignore[arg-type]


THRESHOLD_NAMES = frozenset(f.name for f in fields(Thresholds))
