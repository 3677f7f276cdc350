"""The seam between the endpoints that show video and the access rules.

Every endpoint that shows a camera (WHEP, snapshot, PTZ) asks the gate first; the
gate decides (raising ``AccessDenied``/``CameraNotFound``) and returns a ``View``,
which the endpoint keeps for as long as the use lasts and closes when it ends.  The
gate may end a view itself (revoked grant or token, disabled user) by calling the
callbacks registered with ``View.on_revoke``.  Someone other than the viewer (an
administrator over the camera's or the viewer's unit) ends a view through
``Gate.end_view``, which decides, journals and names the close reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from camrelay.access.accounts import Principal

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
    # what this request's authentication resolved the token to (the middleware's
    # principal, read moments ago): the gate then checks it without reading the token
    # and user again; None: the gate reads them by ``token_digest``
    principal: Principal | None = None


RevokeCallback = Callable[[str], Awaitable[None]]


class View(Protocol):
    """One authorised use of a camera, open until ``close``."""

    @property
    def id(self) -> str: ...

    @property
    def manages_camera(self) -> bool:
        """Whether the viewer manages the camera, and so may read its stream address
        (in the reasons of a failure, too)."""

    def on_revoke(self, callback: RevokeCallback) -> None:
        """Register ``callback(reason)``, awaited when the gate cuts this view."""

    def note_audio(self, codec: str) -> None:
        """The viewer is sent the camera's audio as ``codec`` (its close record says so)."""

    async def close(self, reason: str = "ended") -> None:
        """End the use (idempotent)."""


class Gate(Protocol):
    async def open_view(self, request: ViewRequest) -> View:
        """Decide and record; raise ``AccessDenied`` or ``CameraNotFound`` to refuse."""

    async def end_view(self, who: Principal, view: View, *, reason: str | None,
                       client_address: str | None) -> str:
        """``who``, not the viewer, ends ``view`` for ``reason``: decide (``AccessDenied``,
        ``BadRequest``), journal the action or the refusal, and return the close reason
        that names who ended it.  The caller then closes the view with it."""


# The application's gate (``camrelay.access.views.Views`` in the server).
