"""How catalogue values look in responses and exports: never with a secret."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from camrelay.access.accounts import User
from camrelay.catalog.fields import CAMERA
from camrelay.catalog.models import Camera, Unit
from camrelay.fields import utcnow


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def unit_json(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id, "code": unit.code, "name": unit.name, "level": unit.level.value,
        "parent": unit.parent_code, "created_at": _iso(unit.created_at),
        "updated_at": _iso(unit.updated_at),
    }


def camera_json(camera: Camera, rights: Sequence[str], *, now: datetime | None = None
                ) -> dict[str, Any]:
    """A camera as the caller may see it: stream addresses only for those who manage it."""
    out: dict[str, Any] = {
        "id": camera.id, "external_id": camera.external_id, "name": camera.name,
        "unit": camera.unit_code, "maintenance_unit": camera.maintenance_unit_code,
        "contact_name": camera.contact_name, "contact_phone": camera.contact_phone,
        "category": camera.category, "location": camera.location,
        "latitude": camera.latitude, "longitude": camera.longitude,
        "camera_type": camera.camera_type, "vendor": camera.vendor, "model": camera.model,
        "status": camera.status.value, "last_seen_at": _iso(camera.last_seen_at),
        "tags": list(camera.tags), "enabled": camera.enabled,
        "active": camera.active_at(now or utcnow()),
        "valid_from": _iso(camera.valid_from), "valid_until": _iso(camera.valid_until),
        "created_at": _iso(camera.created_at), "updated_at": _iso(camera.updated_at),
        "rights": list(rights),
        # imported from a lower platform: its link's name, whether the link's last sync
        # failed (this is the last good copy), until when it was pushed upward
        "platform": camera.platform, "stale": camera.stale,
        "pushed_until": _iso(camera.pushed_until),
        "backchannel": camera.backchannel,
    }
    if "manage" in rights:
        for f in _MANAGE_ONLY:  # the password only as has_password
            if f.shown:
                out[f.name] = getattr(camera, f.name)
            else:
                out["has_password"] = camera.has_password
    return out


_MANAGE_ONLY = [f for f in CAMERA if f.manage_only]  # stream addresses, credentials, …
_SEALED = [f for f in CAMERA if f.sealed and f.shown]  # exported only to managers


def export_row(camera: Camera, with_streams: bool) -> dict[str, Any]:
    """One row of the directory; passwords are never exported (re-enter them on import)."""
    row: dict[str, Any] = {
        "external_id": camera.external_id, "name": camera.name, "unit": camera.unit_code,
        "maintenance_unit": camera.maintenance_unit_code or "",
        "contact_name": camera.contact_name or "", "contact_phone": camera.contact_phone or "",
        "category": camera.category, "location": camera.location or "",
        "latitude": "" if camera.latitude is None else camera.latitude,
        "longitude": "" if camera.longitude is None else camera.longitude,
        "camera_type": camera.camera_type, "vendor": camera.vendor or "",
        "model": camera.model or "", "status": camera.status.value,
        "main_url": "", "sub_url": "", "onvif_url": "", "transport": camera.transport,
        "username": "", "tags": ";".join(camera.tags),
        "enabled": "true" if camera.enabled else "false",
        "valid_from": _iso(camera.valid_from) or "", "valid_until": _iso(camera.valid_until) or "",
        "transcode_width": camera.transcode_width or "",
        "transcode_height": camera.transcode_height or "",
        "transcode_bitrate": camera.transcode_bitrate or "",
    }
    if with_streams:
        row.update({f.name: getattr(camera, f.name) or "" for f in _SEALED})
    return row


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "unit": user.unit_code, "role": user.role.value, "disabled": user.disabled,
            "service": user.service, "created_at": _iso(user.created_at)}
