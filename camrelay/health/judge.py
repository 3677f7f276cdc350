"""The blocking part of a health check, run in the probe process (:mod:`.probe_process`).

Opening a camera until its first keyframe (or decoding the hub's cached one), the
picture checks and the thumbnail's JPEG: FFmpeg, PyAV and numpy work that holds the
interpreter lock for part of its ~45 ms.  In its own process it never delays the relay's
event loop, and numpy never loads into the server.  The frozen-picture history of each
camera lives here, across checks.
"""

from __future__ import annotations

import threading
from typing import Any

from camrelay.health.diagnosis import FrozenTracker, diagnose
from camrelay.health.picture import decode_keyframe, downscale
from camrelay.health.probe_process import Judged
from camrelay.relay.probe import first_keyframe
from camrelay.relay.sinks.snapshot import encode_jpeg
from camrelay.relay.stream import SourceSpec
from camrelay.settings import HealthSettings


def thumbnail(frame: Any, width: int) -> tuple[bytes, int, int]:
    """``frame`` (an ``av.VideoFrame``) as a small JPEG ``width`` wide, aspect kept."""
    height = max(2, round(frame.height * width / max(frame.width, 1) / 2) * 2)
    small = frame.reformat(width=width, height=height)
    return encode_jpeg(small, quality=70), width, height


class Judge:
    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._frozen = FrozenTracker()
        self._lock = threading.Lock()  # the tracker's dicts, across the probe threads

    def forget(self, camera_id: int) -> None:
        """The frozen-picture history of ``camera_id`` starts again."""
        with self._lock:
            self._frozen.forget(camera_id)

    def open(self, camera_id: int, category: str, spec: SourceSpec) -> Judged:
        return self.frame(camera_id, category,
                          first_keyframe(spec, self.settings.probe_timeout), True)

    def unit(self, camera_id: int, category: str, data: bytes, codec: str,
             fresh: bool) -> Judged:
        return self.frame(camera_id, category, decode_keyframe(data, codec), fresh)

    def frame(self, camera_id: int, category: str, frame: Any, fresh: bool) -> Judged:
        """Scale down and judge one decoded keyframe."""
        thumb = thumbnail(frame, self.settings.thumbnail_width) \
            if self.settings.thumbnails else None
        settings = self.settings.diagnosis
        if not settings.enabled:
            return ("online", None, ()), thumb
        thresholds = settings.for_category(category)
        small = downscale(frame)
        findings = diagnose(small, thresholds)
        # the same cached keyframe seen twice says nothing about a frozen picture
        if fresh:
            with self._lock:
                frozen = self._frozen.sample(camera_id, small, thresholds)
            if frozen is not None:
                findings.append(frozen)
        if not findings:
            return ("online", None, ()), thumb
        return ("fault", findings[0].kind, tuple(f.as_dict() for f in findings)), thumb
