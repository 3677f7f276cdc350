"""The camera's fields, declared once.

``CAMERA`` lists every field a camera is given by (API name, kind, limits, choices, help)
in the order of the import and export columns.  From it come the validation
(:func:`parse_camera`, shared by the API, the import and the CLI's server side), the
JSON schema of the API's bodies and responses (:func:`camera_schema`), the file columns
(``COLUMNS``) and the options of ``camrelay camera add|update`` (``camrelay.cli.catalog``).
Rules that join two fields (both coordinates or neither, credentials taken from a URL,
``valid_until`` after ``valid_from``) follow the per-field pass in :func:`parse_camera`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from re import Pattern
from typing import Any, Literal

from camrelay.catalog.models import (
    EXTERNAL_ID,
    MAX_TAGS,
    PHONE,
    TAG,
    UNIT_CODE,
    DeviceStatus,
    number_field,
    parse_bool,
    parse_stream_url,
    parse_tags,
    parse_unit_code,
    reject_unknown,
)
from camrelay.errors import ValidationError
from camrelay.fields import (
    TRANSCODE_BITRATE,
    TRANSCODE_HEIGHT,
    TRANSCODE_WIDTH,
    clean_text,
    parse_datetime,
)

Kind = Literal["id", "text", "unit", "vocabulary", "choice", "number", "whole", "url",
               "secret", "tags", "bool", "time"]
Vocabulary = Literal["categories", "camera_types"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # API name, file column, CLI option (--name with '-' for '_') unless ``option``
    kind: Kind
    required: bool = False  # on create
    key: bool = False  # re-imports match on it: a required column of an import file
    limit: int = 0  # id, text, url, secret: most characters
    pattern: Pattern[str] | None = None  # id, text: the (trimmed) value must match
    refusal: str = ""  # id, text, vocabulary: the message when the value does not fit
    enum: type[StrEnum] | tuple[str, ...] = ()  # choice: the values
    vocabulary: Vocabulary | None = None  # vocabulary: which list of the [catalog] settings
    default: str | bool | None = None  # choice, vocabulary, bool: the value when empty
    bounds: tuple[float, float] = (0, 0)  # number, whole: lowest and highest
    even: bool = False  # whole: a multiple of two
    schemes: tuple[str, ...] = ()  # url
    url_pattern: str = ""  # url: the pattern the API document publishes
    sealed: bool = False  # a stream address or credential: exported only to managers
    manage_only: bool = False  # in responses only to those who manage the camera
    option: str = ""  # the CLI option when not derived from the name
    help: str | None = None  # the CLI option's help
    description: str | None = None  # the API document's description

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.enum)

    @property
    def shown(self) -> bool:
        """In responses and exports (a password never is)."""
        return self.kind != "secret"

    @property
    def cli_option(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")


_STREAM = ("rtsp", "rtsps", "demo")
_WHEP = ("whep+http", "whep+https")  # main_url only: another camrelay's camera

CAMERA: tuple[Field, ...] = (
    Field("external_id", "id", key=True, limit=128, pattern=EXTERNAL_ID,
          refusal="external_id must be 1-128 characters without spaces, '/', '\\', '?', "
                  "'#', '%'", help="stable id for re-imports"),
    Field("name", "text", required=True, limit=200),
    Field("unit", "unit", required=True, help="owning (building) unit code"),
    Field("maintenance_unit", "unit", help="maintenance unit code"),
    Field("contact_name", "text", limit=100),
    Field("contact_phone", "text", limit=40, pattern=PHONE,
          refusal="contact_phone may hold digits, spaces, +, - and ( ) only"),
    Field("category", "vocabulary", required=True, vocabulary="categories",
          refusal="category {value} is not in the vocabulary ({choices})"),
    Field("location", "text", limit=200, help="location name"),
    Field("latitude", "number", bounds=(-90, 90), option="--lat"),
    Field("longitude", "number", bounds=(-180, 180), option="--lon"),
    Field("camera_type", "vocabulary", vocabulary="camera_types", default="fixed",
          refusal="camera_type {value} is not one of {choices}", option="--type",
          help="camera type (fixed, ptz, …)"),
    Field("vendor", "text", limit=100),
    Field("model", "text", limit=100),
    Field("status", "choice", enum=DeviceStatus, default=DeviceStatus.UNKNOWN.value),
    Field("main_url", "url", limit=1024, schemes=(*_STREAM, "whip", *_WHEP), sealed=True,
          manage_only=True, url_pattern="^$|^demo:$|^whip:$|^[rR][tT][sS][pP][sS]?://[^\\s]+$"
          "|^[wW][hH][eE][pP]\\+[hH][tT][tT][pP][sS]?://[^\\s]+$",
          help="rtsp:// URL of the main stream, whip: (a field device publishes it) or "
               "whep+http(s):// (a camera of another camrelay)",
          description="rtsp:// or rtsps:// (user:password@ is split off and sealed); "
                      "whip: for a field camera whose device publishes over WHIP; "
                      "whep+http:// or whep+https:// for a camera pulled from another "
                      "camrelay's WHEP endpoint (the password is the bearer token)"),
    Field("sub_url", "url", limit=1024, schemes=_STREAM, sealed=True, manage_only=True,
          url_pattern="^$|^[rR][tT][sS][pP][sS]?://[^\\s]+$",
          help="rtsp:// URL of the sub stream"),
    Field("onvif_url", "url", limit=1024, schemes=("http", "https"), sealed=True,
          manage_only=True, url_pattern="^$|^[hH][tT][tT][pP][sS]?://[^\\s]+$",
          help="http:// ONVIF device address"),
    Field("transport", "choice", enum=("tcp", "udp"), default="tcp", manage_only=True),
    Field("username", "text", limit=128, sealed=True, manage_only=True,
          help="camera user name"),
    Field("password", "secret", limit=256, sealed=True, manage_only=True),
    Field("tags", "tags", option="--tag", help="a tag (repeatable)"),
    Field("enabled", "bool", default=True, option="--enabled/--disabled"),
    Field("valid_from", "time", help="ISO time (temporary connection)"),
    Field("valid_until", "time", help="ISO time after which it is disabled",
          description="RFC 3339 with an offset; later than valid_from (the one given, else "
                      "the stored one)"),
    Field("transcode_width", "whole", bounds=TRANSCODE_WIDTH, even=True, manage_only=True,
          help="width of the H.264 made for viewers that cannot play the camera",
          description="H.264 made for viewers that cannot play the camera: width (default: "
                      "the camera's)"),
    Field("transcode_height", "whole", bounds=TRANSCODE_HEIGHT, even=True, manage_only=True,
          help="… and its height"),
    Field("transcode_bitrate", "whole", bounds=TRANSCODE_BITRATE, manage_only=True,
          help="… and bit/s", description="bits per second"),
)
BY_NAME = {f.name: f for f in CAMERA}
COLUMNS = tuple(f.name for f in CAMERA)  # of an import file
REQUIRED_COLUMNS = tuple(f.name for f in CAMERA if f.key or f.required)
EXPORT_COLUMNS = [f.name for f in CAMERA if f.shown]


# ---- validation ----------------------------------------------------------------------------

_ABSENT = object()
# the key first (a row is known by it), then whether the required fields are there
_PARSE_ORDER = [f for f in CAMERA if f.key] + [f for f in CAMERA if not f.key]
_AFTER_KEYS = next(f for f in CAMERA if not f.key)


def parse_camera(
    data: Mapping[str, Any],
    *,
    categories: Sequence[str],
    camera_types: Sequence[str],
    partial: bool = False,
) -> dict[str, Any]:
    """Validated camera fields (API names; ``unit``/``maintenance_unit`` are codes).

    ``partial`` (an update): only the fields given, no defaults, none required."""
    reject_unknown(data, COLUMNS)
    vocabularies: dict[str, Sequence[str]] = {"categories": categories,
                                              "camera_types": camera_types}
    out: dict[str, Any] = {}
    credentials: list[tuple[str | None, str | None]] = []
    for f in _PARSE_ORDER:
        if f is _AFTER_KEYS and not partial:
            for one in CAMERA:
                if one.required and data.get(one.name) in (None, ""):
                    raise ValidationError(f"{one.name} is required", field=one.name)
        if f.kind == "secret" and f.name not in data:
            continue
        if partial and f.name not in data:
            continue
        if f.kind == "url":
            url, user, password = parse_stream_url(data.get(f.name), f.name, f.schemes)
            credentials.append((user, password))
            out[f.name] = url
            continue
        value = _parse_field(f, data.get(f.name), partial, vocabularies)
        if value is not _ABSENT:
            out[f.name] = value
    _joined_rules(out, credentials, partial)
    return out


def _parse_field(f: Field, value: Any, partial: bool,
                 vocabularies: Mapping[str, Sequence[str]]) -> Any:
    kind = f.kind
    if kind == "id":
        if value in (None, ""):
            return _ABSENT
        if not isinstance(value, str) or f.pattern is None or not f.pattern.match(value.strip()):
            raise ValidationError(f.refusal, field=f.name)
        return value.strip()
    if kind == "text":
        text = clean_text(value, f.name, f.limit, required=f.required)
        if text is not None and f.pattern is not None and not f.pattern.match(text):
            raise ValidationError(f.refusal, field=f.name)
        return text
    if kind == "unit":
        if not f.required and value in (None, ""):
            return None
        return parse_unit_code(value, f.name)
    if kind in ("vocabulary", "choice"):
        if f.default is not None:
            value = value or (f.default if not partial else None)
        allowed = f.choices if f.vocabulary is None else vocabularies[f.vocabulary]
        if value not in allowed:
            raise ValidationError(_refusal(f, value, allowed), field=f.name)
        return f.enum(value) if isinstance(f.enum, type) else value
    if kind in ("number", "whole"):
        return _number(f, value)
    if kind == "secret":
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{f.name} must be a string", field=f.name)
        if value is not None and len(value) > f.limit:
            raise ValidationError(f"{f.name} is longer than {f.limit} characters", field=f.name)
        return value if value not in (None, "") else None
    if kind == "tags":
        return parse_tags(value)
    if kind == "bool":
        return f.default if value in (None, "") else parse_bool(value, f.name)
    if kind == "time":
        return parse_datetime(value, f.name)
    raise AssertionError(f"no parser for {kind}")  # pragma: no cover - a table error


def _refusal(f: Field, value: Any, allowed: Sequence[str]) -> str:
    if f.refusal:
        return f.refusal.format(value=repr(str(value)[:64]), choices=", ".join(allowed))
    either = (" or ".join(allowed) if len(allowed) == 2
              else "one of " + ", ".join(allowed))
    return f"{f.name} must be {either}"


def _number(f: Field, value: Any) -> float | int | None:
    low, high = f.bounds
    number = number_field(value, f.name, low, high)
    if f.kind == "number" or number is None:
        return number
    if number != int(number) or (f.even and int(number) % 2):
        raise ValidationError(f"{f.name} must be a whole{' even' if f.even else ''} number",
                              field=f.name)
    return int(number)


def _joined_rules(out: dict[str, Any], credentials: list[tuple[str | None, str | None]],
                  partial: bool) -> None:
    lat, lon = out.get("latitude"), out.get("longitude")
    if not partial and (lat is None) != (lon is None):
        raise ValidationError("give both latitude and longitude, or neither",
                              field="latitude" if lat is None else "longitude")
    # user:password@ of a URL (the first that has one) where the fields give none
    url_user: str | None = None
    url_password: str | None = None
    for user, password in credentials:
        url_user, url_password = url_user or user, url_password or password
    if url_user is not None:
        out["username"] = out.get("username") or url_user
    if url_password is not None:
        out["password"] = out.get("password") or url_password
    vf, vu = out.get("valid_from"), out.get("valid_until")
    if vf is not None and vu is not None and vu <= vf:
        raise ValidationError("valid_until must be after valid_from", field="valid_until")


# ---- JSON schema ---------------------------------------------------------------------------

CODE_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64,
                               "pattern": UNIT_CODE.pattern}
OPTIONAL_CODE_SCHEMA: dict[str, Any] = {"type": ["string", "null"], "maxLength": 64,
                                        "pattern": f"^$|{UNIT_CODE.pattern}"}
# RFC 3339 with an offset; empty or null for none
OPTIONAL_TIME_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0},
    {"type": "null"}]}
_PRINTABLE = "^[^\\u0000-\\u001f]*$"


def free_text_schema(limit: int, *, required: bool = False) -> dict[str, Any]:
    if required:
        return {"type": "string", "minLength": 1, "maxLength": limit,
                "pattern": "^[^\\u0000-\\u001f]*[^\\u0000-\\u0020][^\\u0000-\\u001f]*$"}
    return {"type": ["string", "null"], "maxLength": limit, "pattern": _PRINTABLE}


def camera_schema(f: Field, vocabularies: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one field in a request body (``vocabularies``: the schema, or
    reference, of each ``[catalog]`` list)."""
    schema = _kind_schema(f, vocabularies)
    if f.description:
        schema = {**schema, "description": f.description}
    return schema


def _kind_schema(f: Field, vocabularies: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    kind = f.kind
    if kind == "id" and f.pattern is not None:
        return {"type": "string", "minLength": 1, "maxLength": f.limit,
                "pattern": f.pattern.pattern}
    if kind == "text":
        if f.pattern is not None:
            return {"type": ["string", "null"], "maxLength": f.limit,
                    "pattern": f"^$|{f.pattern.pattern}"}
        return free_text_schema(f.limit, required=f.required)
    if kind == "unit":
        return CODE_SCHEMA if f.required else OPTIONAL_CODE_SCHEMA
    if kind == "vocabulary" and f.vocabulary is not None:
        return vocabularies[f.vocabulary]
    if kind == "choice":
        return {"type": "string", "enum": list(f.choices)}
    if kind in ("number", "whole"):
        low, high = f.bounds
        schema: dict[str, Any] = {"type": ["number" if kind == "number" else "integer", "null"],
                                  "minimum": low, "maximum": high}
        return {**schema, "multipleOf": 2} if f.even else schema
    if kind == "url":
        return {"type": ["string", "null"], "maxLength": f.limit, "pattern": f.url_pattern}
    if kind == "secret":
        return {"type": ["string", "null"], "maxLength": f.limit, "writeOnly": True}
    if kind == "tags":
        return {"type": "array", "maxItems": MAX_TAGS,
                "items": {"type": "string", "pattern": TAG.pattern}}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "time":
        return OPTIONAL_TIME_SCHEMA
    raise AssertionError(f"no schema for {kind}")  # pragma: no cover - a table error
