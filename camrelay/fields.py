"""Field rules every package applies to untrusted input (free text, times), the clock
the times are compared with, and the limits of camrelay's transcoding.

The catalogue, the access rules, the web layer and the relay share them, so a rule is
written once; the catalogue's own rules stay in ``camrelay.catalog.models`` (values) and
``camrelay.catalog.fields`` (the camera's field table).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from camrelay.errors import ValidationError

# H.264 made by camrelay for viewers that cannot play the camera: (lowest, highest) of a
# camera's transcode_* fields; width and height are even.  The catalogue and the
# transcoder both check against these.
TRANSCODE_WIDTH = (16, 7680)
TRANSCODE_HEIGHT = (16, 4320)
TRANSCODE_BITRATE = (10_000, 50_000_000)  # bits per second


def utcnow() -> datetime:
    return datetime.now(UTC)


def clean_text(value: Any, name: str, limit: int, *, required: bool = False,
               allow_tab: bool = False) -> str | None:
    """A trimmed string of at most ``limit`` characters without control characters
    (tabs too, unless ``allow_tab``); None for empty input unless ``required``."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    text: str = value.strip()
    if len(text) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    if any(ord(c) < 32 and not (allow_tab and c == "\t") for c in text):
        raise ValidationError(f"{name} contains control characters", field=name)
    return text


def parse_datetime(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(
                f"{name} must be an ISO 8601 time such as 2026-10-01T08:00:00+08:00", field=name
            ) from None
    else:
        raise ValidationError(f"{name} must be an ISO 8601 time", field=name)
    if parsed.tzinfo is None:
        raise ValidationError(f"{name} must carry a UTC offset (e.g. +08:00 or Z)", field=name)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-01:00 is in year 10000 in UTC
        raise ValidationError(f"{name} is outside the years 1 to 9999 in UTC",
                              field=name) from None
