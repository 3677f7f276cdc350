"""Which worker serves a request: the camera's owner, worker 0, or every worker (merged).

Derived from the routes' declarations (``owner=`` and ``fan_out=`` on
:class:`camrelay.web.openapi.Operation`, read through :mod:`camrelay.web.routes`), so
the front, the workers' guard and the tests agree.  Routed to the **owner** of camera
``c`` (worker ``c % N``): every route declared with ``owner="camera_id"`` -- those whose
handler uses that camera's hub stream, WebRTC sessions, snapshot cache or PTZ
control/lock/device cache (WHEP, snapshot, probe, PTZ, ONVIF refresh), whatever the
method (the router's 405 for PATCH on a WHEP session included).  **Fanned out** to every
worker and merged: the GET routes declared with ``fan_out`` (``/api/v1/sessions``,
``/metrics``).  Everything else goes to **worker 0** (logins and their lockout counters
stay in one process; the catalogue show/update/delete of a camera touches only the
store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from camrelay.ownership import MAX_CAMERA_ID, Ownership, parse_camera_id
from camrelay.web.openapi import FanOut
from camrelay.web.routes import OWNERS

__all__ = ["FIRST", "MAX_CAMERA_ID", "Ownership", "Route", "camera_of", "parse_camera_id",
           "route_for"]


@dataclass(frozen=True, slots=True)
class Route:
    kind: Literal["owner", "first", "all"]
    camera_id: int | None = None  # kind == "owner"
    merge: FanOut | None = None  # kind == "all"


FIRST = Route("first")


def camera_of(path: str) -> int | None:
    """The camera whose media or device ``path`` is about (None: not such a route, or an
    id no camera can have -- worker 0 then answers 404 like a single process)."""
    return OWNERS.camera_of(path)


def route_for(method: str, path: str) -> Route:
    camera = OWNERS.camera_of(path)
    if camera is not None:
        return Route("owner", camera_id=camera)
    merge = OWNERS.fan_out(method, path)
    if merge is not None:
        return Route("all", merge=merge)
    return FIRST
