"""Several nodes (``redis_url``): a camera-owned request reaching a node that does not serve
the camera goes to the node that does.

* ``POST /whep/{camera_id}``: **307** to the owner's WHEP URL with the original query and a
  one-use ``ticket`` (browsers and aiohttp drop ``Authorization`` on a redirect to another
  origin; the ticket, minted here after the caller authenticated, stands for the bearer
  token at the owner, for this camera only, once).  The owner authorises the view itself
  and journals it, once.
* every other camera-owned route (the WHEP session's DELETE, snapshot, probe, PTZ, ONVIF
  refresh): **proxied** to the owner with the caller's own ``Authorization``, so API
  clients and the console's ``fetch`` and ``<img>`` need nothing new and a snapshot
  costs one hop between nodes, not a round trip to the browser.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from camrelay.errors import AuthenticationRequired
from camrelay.placement import TICKET_PARAM, Placement
from camrelay.web.context import PRINCIPAL_KEY, principal
from camrelay.web.keys import ACCOUNTS_KEY
from camrelay.web.routes import OWNERS

log = logging.getLogger(__name__)


def ticket_auth(placement: Placement) -> Middleware:
    """A WHEP offer that carries a ``ticket`` and no ``Authorization``: the principal of the
    bearer token the ticket stands for (before :func:`bearer_auth`, which then lets it by)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ticket = request.query.get(TICKET_PARAM)
        if ticket is not None and request.method == "POST" \
                and "Authorization" not in request.headers:
            camera = OWNERS.camera_of(request.path)
            token = None if camera is None else await placement.redeem_ticket(ticket, camera)
            if token is None:
                raise AuthenticationRequired("the ticket is unknown, used, expired or for "
                                             "another camera; post the offer again")
            request[PRINCIPAL_KEY] = await request.app[ACCOUNTS_KEY].authenticate_digest(token)
        return await handler(request)

    return middleware


def routing(placement: Placement) -> Middleware:
    """After authentication: serve here, 307 the WHEP offer, or proxy the rest."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        camera = OWNERS.camera_of(request.path)
        if camera is None or request.method == "OPTIONS":
            return await handler(request)
        owner = await placement.place(camera)
        if owner is None:
            return await handler(request)
        if request.method == "POST" and request.match_info.route.resource is not None \
                and request.match_info.route.resource.canonical == "/whep/{camera_id}":
            who = principal(request)
            ticket = await placement.mint_ticket(camera, who.token_digest)
            query = [(k, v) for k, v in request.query.items() if k != TICKET_PARAM]
            target = URL(owner + request.path).with_query([*query, (TICKET_PARAM, ticket)])
            log.info("[camera %d] WHEP offer of user %s sent to its node %s", camera,
                     who.user_id, owner)
            raise web.HTTPTemporaryRedirect(target, headers={"Cache-Control": "no-store"})
        return await placement.forward(request, owner)

    return middleware
