"""Two middlewares: errors become problem responses; bearer tokens become principals."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from camrelay.access.accounts import Accounts, Principal
from camrelay.errors import AuthenticationRequired, CamrelayError, TooManyRequests
from camrelay.redact import redact_text

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

ACCOUNTS_KEY = web.AppKey("accounts", Accounts)
PUBLIC_KEY = web.AppKey("public_routes", set)  # (METHOD, canonical path) open without a token
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


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
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("bug: unhandled error in %s %s [incident %s]", request.method,
                      request.path, incident)
        return problem_response(500, "Internal error",
                                f"camrelay hit a bug; operators can find incident {incident} "
                                "in the server log")


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    resource = route.resource
    canonical = resource.canonical if resource is not None else None
    if request.method == "OPTIONS" or canonical is None \
            or (request.method, canonical) in request.app[PUBLIC_KEY] \
            or (request.method == "HEAD" and ("GET", canonical) in request.app[PUBLIC_KEY]) \
            or canonical.startswith("/static"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationRequired("this route needs an Authorization: Bearer token")
    request[PRINCIPAL_KEY] = await request.app[ACCOUNTS_KEY].authenticate(secret.strip())
    return await handler(request)


__all__ = ["TooManyRequests", "bearer_auth", "problem_response", "problems"]
