"""Middlewares: errors become problem responses; text that is not text is refused; bearer
tokens become principals; in a worker process, the front's word for the client address
and the camera ownership guard."""

from __future__ import annotations

import ipaddress
import logging
import socket
import uuid
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from sqlalchemy import exc as sa_exc

from camrelay.access.accounts import Role, TokenRefused
from camrelay.errors import (
    AccessDenied,
    AuthenticationRequired,
    BadRequest,
    CamrelayError,
    TooManyRequests,
)
from camrelay.jsonsafe import is_text
from camrelay.redact import redact_text
from camrelay.web.context import PRINCIPAL_KEY
from camrelay.web.keys import ACCOUNTS_KEY, AUTH_FAILURES_KEY, PUBLIC_KEY

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

# the store's database does not answer (not a bug: a 503, see problems())
STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
              sa_exc.TimeoutError, ConnectionRefusedError)

PEER_HEADER = "X-Camrelay-Peer"  # the client address, set by the front of worker processes


def problem_response(status: int, title: str, detail: str, **extra: object) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update(extra)
    response = web.json_response(body, status=status, content_type=PROBLEM_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="camrelay"'
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except CamrelayError as err:
        if err.status >= 500 and err.status != 503:
            log.error("request %s %s failed: %s", request.method, request.path, err.detail)
        else:
            log.info("refused %s %s: %d %s", request.method, request.path, err.status,
                     redact_text(err.detail))
        response = web.json_response(err.problem(), status=err.status, content_type=PROBLEM_TYPE)
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        if err.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="camrelay"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(exc.status, exc.reason, exc.text or exc.reason)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except STORE_DOWN as err:
        # the database does not answer (PostgreSQL down, the network to it cut): no new
        # views (nothing can be journalled), current views go on; not a bug
        log.error("store unavailable during %s %s: %s", request.method, request.path,
                  redact_text(str(err).splitlines()[0] if str(err) else type(err).__name__))
        response = problem_response(503, "Store unavailable",
                                    "the database does not answer; nothing was changed and no "
                                    "view was opened. Try again shortly",
                                    reason="store_unavailable")
        response.headers["Retry-After"] = "5"
        return response
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("bug: unhandled error in %s %s [incident %s]", request.method,
                      request.path, incident)
        return problem_response(500, "Internal error",
                                f"camrelay hit a bug; operators can find incident {incident} "
                                "in the server log")


@web.middleware
async def text_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (400) a request whose headers, query or path hold bytes that are not UTF-8:
    aiohttp hands them on as lone surrogates, which no store, journal or log line can hold
    (a User-Agent of b"\\xff" would otherwise fail deep in the journal)."""
    for where, items in (("header", request.headers.items()), ("query parameter",
                                                               request.query.items()),
                         ("path parameter", request.match_info.items())):
        for name, value in items:
            if not (is_text(value) and is_text(name)):
                shown = name if is_text(name) else ascii(name)[1:-1]
                raise BadRequest(f"the {where} {shown[:64]} is not UTF-8 text")
    return await handler(request)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    resource = route.resource
    canonical = resource.canonical if resource is not None else None
    if request.method == "OPTIONS" or canonical is None \
            or (request.method, canonical) in request.app[PUBLIC_KEY] \
            or (request.method == "HEAD" and ("GET", canonical) in request.app[PUBLIC_KEY]) \
            or canonical.startswith("/static") or PRINCIPAL_KEY in request:
        return await handler(request)  # (a cluster's WHEP ticket already authenticated it)
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationRequired("this route needs an Authorization: Bearer token")
    try:
        request[PRINCIPAL_KEY] = await request.app[ACCOUNTS_KEY].authenticate(secret.strip())
    except TokenRefused as err:
        failures = request.app.get(AUTH_FAILURES_KEY)
        if failures is not None:
            await failures.record(username=err.username, address=request.remote,
                                  reason=err.reason,
                                  user_agent=request.headers.get("User-Agent"))
        raise
    if request[PRINCIPAL_KEY].role is Role.FEDERATION and not (
            (request.method, canonical) in FEDERATION_ROUTES or canonical.startswith("/whep/")):
        raise AccessDenied("a federation credential only reads the shared catalogue, watches "
                           "shared cameras, reports who watches and reads the live channel")
    return await handler(request)


# what an upper platform's federation credential may call (besides WHEP)
FEDERATION_ROUTES = {("GET", "/api/v1/federation/catalogue"),
                     ("POST", "/api/v1/federation/views"), ("GET", "/api/v1/events")}


def over_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and getattr(sock, "family", None) == socket.AF_UNIX


@web.middleware
async def front_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The client address the front saw (``X-Camrelay-Peer``), trusted only on a request
    that came over the worker's unix socket (only the front can reach it); the access
    log, the login lockout and the metrics address check then see the real viewer."""
    peer = request.headers.get(PEER_HEADER)
    if peer is not None and over_unix_socket(request):
        try:
            ipaddress.ip_address(peer)
        except ValueError:
            log.warning("ignoring a malformed %s header from the front", PEER_HEADER)
        else:
            request = request.clone(remote=peer)
    return await handler(request)


def misdirected_guard(owner_elsewhere: Callable[[str], bool]) -> Middleware:
    """In a worker: refuse a request about a camera another worker owns (421), so that no
    camera is ever pulled twice on one machine even if something bypasses the front."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if owner_elsewhere(request.path):
            return problem_response(421, "Misdirected Request",
                                    "another camrelay worker process owns this camera; send "
                                    "the request to the server's address, not to a worker")
        return await handler(request)

    return guard


__all__ = ["PEER_HEADER", "TooManyRequests", "bearer_auth", "front_peer", "misdirected_guard",
           "over_unix_socket", "problem_response", "problems", "text_only"]
