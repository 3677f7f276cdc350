"""The latest checked keyframe of each camera as a small JPEG, for the console's tree.

Kept in memory only, one per camera: replaced at the camera's next check, dropped when
a check gets no picture, gone when the process ends; never written to disk or the store
(seed 002 art. 26: no copies beyond what the settings allow; ``health.thumbnails =
false`` keeps none).  Made in the probe process (``camrelay.health.judge.thumbnail``)
from the frame the diagnosis decoded, so a thumbnail costs one small JPEG encode, no
decode of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    width: int
    height: int
    taken_at: datetime


class Thumbnails:
    def __init__(self, width: int) -> None:
        self.width = width
        self._latest: dict[int, Thumbnail] = {}

    def keep(self, camera_id: int, thumbnail: Thumbnail) -> None:
        """``camera_id``'s latest, replacing the one before."""
        self._latest[camera_id] = thumbnail

    def get(self, camera_id: int) -> Thumbnail | None:
        return self._latest.get(camera_id)

    def forget(self, camera_id: int) -> None:
        self._latest.pop(camera_id, None)

    def __len__(self) -> int:
        return len(self._latest)
