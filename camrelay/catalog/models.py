"""Catalogue values and the rules their fields follow.

``parse_unit`` and ``parse_camera`` turn untrusted input (a JSON body, a CSV row) into
column values or raise ``ValidationError`` naming the field; the API, the import and
the CLI share them, so a rule is written once.
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
from camrelay.fields import clean_text, parse_datetime
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

# field name -> max length, for free-text fields
TEXT_LIMITS = {
    "name": 200,
    "location": 200,
    "contact_name": 100,
    "vendor": 100,
    "model": 100,
    "username": 128,
    "password": 256,
}

CAMERA_FIELDS = (
    "external_id", "name", "unit", "maintenance_unit", "contact_name", "contact_phone",
    "category", "location", "latitude", "longitude", "camera_type", "vendor", "model",
    "status", "main_url", "sub_url", "onvif_url", "transport", "username", "password",
    "tags", "enabled", "valid_from", "valid_until",
    "transcode_width", "transcode_height", "transcode_bitrate",
)
# field -> (lowest, highest) for the transcoding settings; sizes must be even
TRANSCODE_LIMITS = {"transcode_width": (16, 7680), "transcode_height": (16, 4320),
                    "transcode_bitrate": (10_000, 50_000_000)}
REQUIRED_CAMERA_FIELDS = ("name", "unit", "category")
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
    _reject_unknown(data, UNIT_FIELDS)
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


def _reject_unknown(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ValidationError(f"unknown field {str(key)[:64]!r}", field=str(key)[:64])


def _number(data: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = data.get(name)
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


def _bool(value: Any, name: str) -> bool:
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
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(f"{name} is not a valid URL", field=name) from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValidationError(
            f"{name} must be a {' or '.join(s + '://' for s in schemes if s != 'demo')} URL "
            "with a host",
            field=name,
        )
    if port == 0 or any(c.isspace() for c in value):
        raise ValidationError(f"{name} is not a valid URL", field=name)
    return split_credentials(value)


def parse_camera(
    data: Mapping[str, Any],
    *,
    categories: Sequence[str],
    camera_types: Sequence[str],
    partial: bool = False,
) -> dict[str, Any]:
    """Validated camera fields (API names; ``unit``/``maintenance_unit`` are codes)."""
    _reject_unknown(data, CAMERA_FIELDS)
    out: dict[str, Any] = {}

    def wanted(name: str) -> bool:
        return not partial or name in data

    if wanted("external_id") and data.get("external_id") not in (None, ""):
        ext = data.get("external_id")
        if not isinstance(ext, str) or not EXTERNAL_ID.match(ext.strip()):
            raise ValidationError(
                "external_id must be 1-128 characters without spaces, '/', '\\', '?', '#', '%'",
                field="external_id",
            )
        out["external_id"] = ext.strip()
    for name in REQUIRED_CAMERA_FIELDS:
        if not partial and data.get(name) in (None, ""):
            raise ValidationError(f"{name} is required", field=name)
    if wanted("name"):
        out["name"] = _text(data, "name", 200, required=True)
    if wanted("unit"):
        out["unit"] = parse_unit_code(data.get("unit"), "unit")
    if wanted("maintenance_unit"):
        mu = data.get("maintenance_unit")
        out["maintenance_unit"] = None if mu in (None, "") else parse_unit_code(
            mu, "maintenance_unit")
    for name in ("contact_name", "location", "vendor", "model"):
        if wanted(name):
            out[name] = _text(data, name, TEXT_LIMITS[name])
    if wanted("contact_phone"):
        phone = _text(data, "contact_phone", 40)
        if phone is not None and not PHONE.match(phone):
            raise ValidationError("contact_phone may hold digits, spaces, +, - and ( ) only",
                                  field="contact_phone")
        out["contact_phone"] = phone
    if wanted("category"):
        category = data.get("category")
        if category not in categories:
            raise ValidationError(
                f"category {str(category)[:64]!r} is not in the vocabulary "
                f"({', '.join(categories)})",
                field="category",
            )
        out["category"] = category
    if wanted("camera_type"):
        ctype = data.get("camera_type") or ("fixed" if not partial else None)
        if ctype not in camera_types:
            raise ValidationError(
                f"camera_type {str(ctype)[:64]!r} is not one of {', '.join(camera_types)}",
                field="camera_type",
            )
        out["camera_type"] = ctype
    if wanted("status"):
        status = data.get("status") or ("unknown" if not partial else None)
        if status not in {s.value for s in DeviceStatus}:
            raise ValidationError(
                f"status must be one of {', '.join(s.value for s in DeviceStatus)}",
                field="status",
            )
        out["status"] = DeviceStatus(status)
    if wanted("latitude"):
        out["latitude"] = _number(data, "latitude", -90, 90)
    if wanted("longitude"):
        out["longitude"] = _number(data, "longitude", -180, 180)
    if not partial and (out.get("latitude") is None) != (out.get("longitude") is None):
        raise ValidationError("give both latitude and longitude, or neither",
                              field="latitude" if out.get("latitude") is None else "longitude")
    url_user: str | None = None
    url_password: str | None = None
    for name, schemes in (("main_url", ("rtsp", "rtsps", "demo")), ("sub_url", ("rtsp", "rtsps", "demo")),
                          ("onvif_url", ("http", "https"))):
        if wanted(name):
            url, user, password = parse_stream_url(data.get(name), name, schemes)
            out[name] = url
            url_user = url_user or user
            url_password = url_password or password
    if wanted("transport"):
        transport = data.get("transport") or ("tcp" if not partial else None)
        if transport not in ("tcp", "udp"):
            raise ValidationError("transport must be tcp or udp", field="transport")
        out["transport"] = transport
    if wanted("username") or url_user is not None:
        out["username"] = _text(data, "username", 128) or url_user
    if "password" in data or url_password is not None:
        password = data.get("password")
        if password is not None and not isinstance(password, str):
            raise ValidationError("password must be a string", field="password")
        if password is not None and len(password) > 256:
            raise ValidationError("password is longer than 256 characters", field="password")
        out["password"] = password if password not in (None, "") else url_password
    if wanted("tags"):
        out["tags"] = _tags(data.get("tags"))
    if wanted("enabled"):
        enabled = data.get("enabled")
        out["enabled"] = True if enabled in (None, "") else _bool(enabled, "enabled")
    if wanted("valid_from"):
        out["valid_from"] = parse_datetime(data.get("valid_from"), "valid_from")
    if wanted("valid_until"):
        out["valid_until"] = parse_datetime(data.get("valid_until"), "valid_until")
    for name, (low, high) in TRANSCODE_LIMITS.items():
        if wanted(name):
            number = _number(data, name, low, high)
            if number is not None and (number != int(number) or (
                    name != "transcode_bitrate" and int(number) % 2)):
                raise ValidationError(f"{name} must be a whole{' even' if name != 'transcode_bitrate' else ''} "
                                      "number", field=name)
            out[name] = None if number is None else int(number)
    vf, vu = out.get("valid_from"), out.get("valid_until")
    if vf is not None and vu is not None and vu <= vf:
        raise ValidationError("valid_until must be after valid_from", field="valid_until")
    return out


def _tags(value: Any) -> list[str]:
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
