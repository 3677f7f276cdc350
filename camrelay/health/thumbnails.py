"""The latest checked keyframe of each camera as a small JPEG, for the console's tree.

Kept in memory only, one per camera: replaced at the camera's next check, dropped when
a check gets no picture, gone when the process ends; never written to disk or the store
(seed 002 art. 26: no copies beyond what the settings allow; ``health.thumbnails =
false`` keeps none).  Made off the event loop from the frame the diagnosis decoded, so a
thumbnail costs one small JPEG encode, no decode of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from camrelay.fields import utcnow
from camrelay.relay.sinks.snapshot import encode_jpeg


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

    def take(self, camera_id: int, frame: Any) -> None:
        """Keep ``frame`` (an ``av.VideoFrame``) scaled to ``width`` (blocking)."""
        height = max(2, round(frame.height * self.width / max(frame.width, 1) / 2) * 2)
        small = frame.reformat(width=self.width, height=height)
        self._latest[camera_id] = Thumbnail(encode_jpeg(small, quality=70), self.width,
                                            height, utcnow())

    def get(self, camera_id: int) -> Thumbnail | None:
        return self._latest.get(camera_id)

    def forget(self, camera_id: int) -> None:
        self._latest.pop(camera_id, None)

    def __len__(self) -> int:
        return len(self._latest)
