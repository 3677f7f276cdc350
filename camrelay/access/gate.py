"""The seam between the endpoints that show video and the access rules.

Every endpoint that shows a camera (WHEP, snapshot, PTZ) asks the gate first; the
gate decides (raising ``AccessDenied``/``CameraNotFound``) and returns a ``View``,
which the endpoint keeps for as long as the use lasts and closes when it ends.  The
gate may end a view itself (revoked grant or token, disabled user) by calling the
callbacks registered with ``View.on_revoke``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

Action = Literal["live", "snapshot", "ptz"]


@dataclass(frozen=True, slots=True)
class ViewRequest:
    """Who asks to see what, and from where."""

    token_digest: str
    user_id: int
    camera_id: int
    action: Action
    purpose: str | None
    client_address: str | None
    user_agent: str | None
    via: str  # "whep", "snapshot", "ptz", ...


RevokeCallback = Callable[[str], Awaitable[None]]


class View(Protocol):
    """One authorised use of a camera, open until ``close``."""

    @property
    def id(self) -> str: ...

    def on_revoke(self, callback: RevokeCallback) -> None:
        """Register ``callback(reason)``, awaited when the gate cuts this view."""

    async def close(self, reason: str = "ended") -> None:
        """End the use (idempotent)."""


class Gate(Protocol):
    async def open_view(self, request: ViewRequest) -> View:
        """Decide and record; raise ``AccessDenied`` or ``CameraNotFound`` to refuse."""


# The application's gate (``camrelay.access.views.Views`` in the server).
GATE_KEY = web.AppKey("gate", Gate)
