"""What the route modules read from a request: the caller (``PRINCIPAL_KEY``), the stream
variant, the view request for the gate."""

from __future__ import annotations

from aiohttp import web

from camrelay.access.accounts import Principal
from camrelay.access.gate import Action, ViewRequest
from camrelay.errors import AuthenticationRequired, BadRequest
from camrelay.relay.media import Variant

PRINCIPAL_KEY = web.RequestKey("principal", Principal)  # set by the bearer_auth middleware
PURPOSE_HEADER = "X-Camrelay-Purpose"
MAX_PURPOSE_CHARS = 500


def stream_variant(request: web.Request) -> Variant:
    """The ``stream`` query parameter of the viewing endpoints (main unless sub)."""
    stream = request.query.get("stream", "main")
    if stream not in ("main", "sub"):
        raise BadRequest(f"stream must be main or sub, got {stream[:20]!r}")
    return "sub" if stream == "sub" else "main"


def view_request(request: web.Request, camera_id: int, action: Action, via: str
                 ) -> ViewRequest:
    """What the gate needs to decide and record a use: who, which camera, why, from where.

    The purpose comes from the ``purpose`` query parameter or the X-Camrelay-Purpose
    header; the grant's purpose or "routine monitoring" stands in when there is none."""
    who = principal(request)
    purpose = request.query.get("purpose") or request.headers.get(PURPOSE_HEADER)
    if purpose is not None:
        purpose = purpose.strip()
        if len(purpose) > MAX_PURPOSE_CHARS:
            raise BadRequest(f"purpose is longer than {MAX_PURPOSE_CHARS} characters")
    return ViewRequest(token_digest=who.token_digest, user_id=who.user_id,
                       camera_id=camera_id, action=action, purpose=purpose or None,
                       client_address=request.remote,
                       user_agent=request.headers.get("User-Agent", "")[:300] or None,
                       via=via, principal=who)


def principal(request: web.Request) -> Principal:
    who = request.get(PRINCIPAL_KEY)
    if who is None:  # pragma: no cover - the auth middleware guarantees it
        raise AuthenticationRequired("this route needs an Authorization: Bearer token")
    assert isinstance(who, Principal)
    return who
