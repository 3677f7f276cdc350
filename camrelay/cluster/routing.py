"""Which worker serves a request: the camera's owner, worker 0, or every worker (merged).

Pure functions of the method and the (decoded) path, so the front, the workers' guard
and the tests agree.  Routed to the **owner** of camera ``c`` (worker ``c % N``) -- every
route whose handler uses that camera's hub stream, WebRTC sessions, snapshot cache or
PTZ control/lock/device cache:

* ``/whep/{camera_id}`` and everything under it (POST, OPTIONS, the session's DELETE,
  OPTIONS and the router's 405 for PATCH);
* ``/api/v1/cameras/{camera_id}/snapshot.jpg`` (the hub's cached GOP, else the stream);
* ``/api/v1/cameras/{camera_id}/probe`` (opens the camera: the owner is the one that
  talks to it);
* ``/api/v1/cameras/{camera_id}/ptz/...`` (move, stop, presets, goto, lock: the PTZ lock
  lives in one process);
* ``/api/v1/cameras/{camera_id}/onvif/refresh`` (the PTZ control's device cache).

**Fanned out** to every worker and merged: ``GET /api/v1/sessions`` and ``GET /metrics``.
Everything else goes to **worker 0** (logins and their lockout counters stay in one
process; the catalogue show/update/delete of a camera touches only the store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_CAMERA_ID = 2**31 - 1

_OWNED = re.compile(
    r"/whep/(?P<whep>[^/]+)(?:/.*)?"
    r"|/api/v1/cameras/(?P<camera>[^/]+)/(?:snapshot\.jpg|probe|ptz(?:/.*)?|onvif/refresh)",
    re.DOTALL)

FANNED_OUT = {"/api/v1/sessions": "sessions", "/metrics": "metrics"}


@dataclass(frozen=True, slots=True)
class Ownership:
    """Worker ``index`` of ``count``: it owns camera ``c`` when ``c % count == index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} outside 0..{self.count - 1}")

    def owner_of(self, camera_id: int) -> int:
        return camera_id % self.count

    def owns(self, camera_id: int) -> bool:
        return camera_id % self.count == self.index

    @property
    def node_suffix(self) -> str:
        return f"-w{self.index}"


@dataclass(frozen=True, slots=True)
class Route:
    kind: Literal["owner", "first", "all"]
    camera_id: int | None = None  # kind == "owner"
    merge: Literal["sessions", "metrics"] | None = None  # kind == "all"


FIRST = Route("first")


def parse_camera_id(raw: str) -> int | None:
    """The camera id the app's ``camera_id_of`` would accept, else None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_CAMERA_ID else None


def camera_of(path: str) -> int | None:
    """The camera whose media or device ``path`` is about (None: not such a route, or an
    id no camera can have -- worker 0 then answers 404 like a single process)."""
    match = _OWNED.fullmatch(path)
    if match is None:
        return None
    return parse_camera_id(match.group("whep") or match.group("camera"))


def route_for(method: str, path: str) -> Route:
    camera = camera_of(path)
    if camera is not None:
        return Route("owner", camera_id=camera)
    merge = FANNED_OUT.get(path)
    if merge is not None and method == "GET":
        return Route("all", merge="sessions" if merge == "sessions" else "metrics")
    return FIRST
