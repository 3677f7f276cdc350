"""Catalogue values and the rules their fields follow.

``parse_unit`` (and ``camrelay.catalog.fields.parse_camera``, built from the camera's
field table with the value rules here) turn untrusted input (a JSON body, a CSV row)
into column values or raise ``ValidationError`` naming the field; the API, the import
and the CLI share them, so a rule is written once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from camrelay.errors import ValidationError
from camrelay.fields import clean_text
from camrelay.redact import split_credentials


class UnitLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    DEPARTMENT = "department"


class DeviceStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAULT = "fault"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Unit:
    id: int
    code: str
    name: str
    level: UnitLevel
    parent_id: int | None
    parent_code: str | None
    created_at: datetime
    updated_at: datetime

FIELD_URL = "whip:"  # the stream address of a field camera whose device publishes (WHIP)


@dataclass(frozen=True, slots=True)
class Camera:
    id: int
    external_id: str
    name: str
    unit_id: int
    unit_code: str
    maintenance_unit_code: str | None
    contact_name: str | None
    contact_phone: str | None
    category: str
    location: str | None
    latitude: float | None
    longitude: float | None
    camera_type: str
    vendor: str | None
    model: str | None
    status: DeviceStatus
    last_seen_at: datetime | None
    main_url: str | None  # never with credentials
    sub_url: str | None
    onvif_url: str | None
    transport: str
    username: str | None
    has_password: bool
    tags: tuple[str, ...]
    enabled: bool
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    updated_at: datetime
    transcode_width: int | None = None
    transcode_height: int | None = None
    transcode_bitrate: int | None = None
    # imported from a lower platform (camrelay.federation): the link, its name (the
    # platform it comes from), the camera's id down there, whether the link's last sync
    # failed (this is the last good copy), and until when it was pushed upward
    link_id: int | None = None
    platform: str | None = None
    remote_id: int | None = None
    stale: bool = False
    pushed_until: datetime | None = None
    # an RTSP camera's ONVIF audio back-channel, as last found by a talk-back (None:
    # never asked; a new stream address forgets it)
    backchannel: bool | None = None

    @property
    def is_field(self) -> bool:
        """A field camera: its device publishes over WHIP (``main_url`` is ``whip:``)."""
        return self.main_url == FIELD_URL

    @property
    def talkable(self) -> bool:
        """Talk-back can reach it: a field camera (its device, over WHIP), or an
        ``rtsp://`` camera of this platform (over its ONVIF audio back-channel, if the
        camera has one: only asking it tells)."""
        if self.link_id is not None:  # imported from a lower platform
            return False
        return self.is_field or (self.main_url or "").lower().startswith("rtsp://")

    @property
    def talk_possible(self) -> bool:
        """Talk-back may work: :attr:`talkable`, and not an RTSP camera found without a
        back-channel the last time an operator asked (what the right ``talk`` shows)."""
        return self.talkable and (self.is_field or self.backchannel is not False)

    def active_at(self, now: datetime) -> bool:
        """Enabled and inside its validity window (temporary connections end by themselves)."""
        if not self.enabled:
            return False
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until


UNIT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
EXTERNAL_ID = re.compile(r"^[^\s/\\?#%]{1,128}$")
PHONE = re.compile(r"^[0-9+\-() ]{3,40}$")
TAG = re.compile(r"^[^\s,;]{1,40}$")
MAX_TAGS = 32

UNIT_FIELDS = ("code", "name", "level", "parent")


def _text(data: Mapping[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    return clean_text(data.get(name), name, limit, required=required)


def parse_unit_code(value: Any, name: str = "code") -> str:
    if not isinstance(value, str) or not UNIT_CODE.match(value):
        raise ValidationError(
            f"{name} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit (got {str(value)[:80]!r})",
            field=name,
        )
    return value


def parse_unit(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validated unit fields: code, name, level, parent (a code or None)."""
    reject_unknown(data, UNIT_FIELDS)
    out: dict[str, Any] = {}
    if not partial or "code" in data:
        out["code"] = parse_unit_code(data.get("code"))
    if not partial or "name" in data:
        out["name"] = _text(data, "name", 200, required=True)
    if not partial or "level" in data:
        level = data.get("level")
        if level not in {lv.value for lv in UnitLevel}:
            raise ValidationError(
                f"level must be one of {', '.join(lv.value for lv in UnitLevel)}", field="level"
            )
        out["level"] = UnitLevel(level)
    if "parent" in data:
        parent = data.get("parent")
        out["parent"] = None if parent in (None, "") else parse_unit_code(parent, "parent")
    return out


def reject_unknown(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ValidationError(f"unknown field {str(key)[:64]!r}", field=str(key)[:64])


def number_field(value: Any, name: str, low: float, high: float) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a number", field=name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number", field=name) from None
    if math.isnan(number) or not low <= number <= high:
        raise ValidationError(f"{name} must be between {low:g} and {high:g}", field=name)
    return number


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValidationError(f"{name} must be true or false", field=name)


def parse_stream_url(value: Any, name: str, schemes: tuple[str, ...]) -> tuple[str | None,
                                                                              str | None,
                                                                              str | None]:
    """A URL without credentials, plus the user and password it carried (if any)."""
    if value is None or value == "":
        return None, None, None
    if not isinstance(value, str) or len(value) > 1024:
        raise ValidationError(f"{name} must be a URL of at most 1024 characters", field=name)
    value = value.strip()
    if (value == "demo:" or value.startswith("demo:?")) and "demo" in schemes:
        return value, None, None
    if value == FIELD_URL and "whip" in schemes:
        return value, None, None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(f"{name} is not a valid URL", field=name) from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValidationError(
            f"{name} must be a {' or '.join(s + '://' for s in schemes if s not in ('demo', 'whip'))} URL "
            "with a host",
            field=name,
        )
    if port == 0 or any(c.isspace() for c in value):
        raise ValidationError(f"{name} is not a valid URL", field=name)
    return split_credentials(value)


def parse_tags(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        items = [t.strip() for t in re.split(r"[;,]", value) if t.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise ValidationError("tags must be a list of strings", field="tags")
    if len(items) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags", field="tags")
    for tag in items:
        if not isinstance(tag, str) or not TAG.match(tag):
            raise ValidationError("each tag is 1-40 characters without spaces, ',' or ';'",
                                  field="tags")
    return sorted(set(items))
