"""The front: the one HTTP(S) listener, a reverse proxy to the worker processes.

Each request goes where :func:`camrelay.cluster.routing.route_for` says: the camera's
owner, worker 0, or (``GET /api/v1/sessions``, ``GET /metrics``) every worker, merged.

* The client's address travels as ``X-Camrelay-Peer`` (a client's own header of that
  name is dropped); workers trust it only on their unix socket.
* Hop-by-hop headers (RFC 9110 section 7.6.1, and any named in ``Connection``) are
  dropped both ways; everything else, ``Location``, ``ETag`` and every ``Link``
  included, passes unchanged, bodies as they are (no decompression, no cookie jar).
* Request bodies are streamed to the worker and capped at ``server.max_body_bytes``:
  a declared ``Content-Length`` above it, or a chunked body that grows past it, is a 413
  problem, as a single process answers.
* A worker that is down (crashed, restarting) is a 503 problem with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from camrelay.cluster.merge import merge_metrics, merge_sessions
from camrelay.cluster.routing import route_for
from camrelay.errors import PayloadTooLarge, RetryLater
from camrelay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from camrelay.metrics import front_exposition
from camrelay.settings import Settings
from camrelay.web.middleware import PEER_HEADER, problems

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
NOT_FORWARDED = HOP_BY_HOP | {"expect", PEER_HEADER.lower()}
CONNECT_TIMEOUT = 5.0
FAN_OUT_TIMEOUT = 10.0
CHUNK = 64 * 1024


class WorkerDown(RetryLater):
    """The worker process that serves this request is not running (restarting)."""

    status = 503
    title = "Worker process unavailable"


class WorkerLink:
    """How the front reaches one worker; the supervisor keeps ``up``, ``pid`` and
    ``restarts`` current."""

    def __init__(self, index: int, path: Path) -> None:
        self.index = index
        self.path = path
        self.up = False
        self.pid: int | None = None
        self.restarts = 0
        self.retry_after = 2
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.path), limit=1024),
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
        return self._session

    def down(self) -> WorkerDown:
        return WorkerDown(f"worker process {self.index} is not running (it is being "
                          "restarted); try again shortly", retry_after=self.retry_after,
                          worker=self.index)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def request_headers(request: web.Request) -> CIMultiDict[str]:
    drop = NOT_FORWARDED | _connection_tokens(request.headers)
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    if request.remote:
        headers[PEER_HEADER] = request.remote
    return headers


def response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def _target(request: web.Request) -> URL:
    rel = request.rel_url
    return URL.build(scheme="http", host="camrelay-worker", path=rel.raw_path,
                     query_string=rel.raw_query_string, encoded=True)


@dataclass
class _Upload:
    limit: int
    sent: int = 0
    too_large: bool = False

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the body is larger than {self.limit} bytes")


async def _capped(content: aiohttp.StreamReader, upload: _Upload) -> AsyncIterator[bytes]:
    async for chunk in content.iter_chunked(CHUNK):
        upload.sent += len(chunk)
        if upload.sent > upload.limit:
            upload.too_large = True
            raise upload.error()
        yield chunk


class Front:
    def __init__(self, settings: Settings, links: Sequence[WorkerLink]) -> None:
        self.settings = settings
        self.links = list(links)

    def create_app(self) -> web.Application:
        app = web.Application(middlewares=[problems])
        app[FRONT_KEY] = self
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def close_links(app: web.Application) -> None:
            for link in self.links:
                await link.close()

        app.on_cleanup.append(close_links)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = route_for(request.method, request.path)
        if route.kind == "all":
            if route.merge == "sessions":
                return await self.sessions(request)
            return await self.metrics(request)
        index = 0 if route.camera_id is None else route.camera_id % len(self.links)
        return await self.forward(request, self.links[index])

    # ---- one worker --------------------------------------------------------------------

    async def forward(self, request: web.Request, link: WorkerLink) -> web.StreamResponse:
        upload = _Upload(self.settings.server.max_body_bytes)
        if request.content_length is not None and request.content_length > upload.limit:
            raise upload.error()
        if not link.up:
            raise link.down()
        data = _capped(request.content, upload) if request.body_exists else None
        response: web.StreamResponse | None = None
        try:
            async with link.session.request(request.method, _target(request),
                                            headers=request_headers(request), data=data,
                                            allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                              headers=response_headers(upstream.headers))
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, TimeoutError, PayloadTooLarge) as err:
            if response is not None and response.prepared:
                if request.transport is not None and not request.transport.is_closing():
                    log.warning("worker %d broke off its answer to %s %s: %s", link.index,
                                request.method, request.path, type(err).__name__)
                response.force_close()  # else the client went away: nothing to tell
                return response
            if upload.too_large:
                raise upload.error() from None
            log.warning("worker %d unreachable for %s %s: %s", link.index, request.method,
                        request.path, type(err).__name__)
            raise link.down() from None

    # ---- every worker ------------------------------------------------------------------

    async def _ask_all(self, request: web.Request
                       ) -> list[tuple[WorkerLink, tuple[int, CIMultiDict[str], bytes] | None]]:
        headers = request_headers(request)

        async def one(link: WorkerLink
                      ) -> tuple[WorkerLink, tuple[int, CIMultiDict[str], bytes] | None]:
            if not link.up:
                return link, None
            try:
                async with asyncio.timeout(FAN_OUT_TIMEOUT), link.session.get(
                        _target(request), headers=headers, allow_redirects=False) as r:
                    return link, (r.status, response_headers(r.headers), await r.read())
            except (aiohttp.ClientError, TimeoutError) as err:
                log.warning("worker %d unreachable for %s: %s", link.index, request.path,
                            type(err).__name__)
                return link, None

        return list(await asyncio.gather(*(one(link) for link in self.links)))

    @staticmethod
    def _passed_on(status: int, headers: CIMultiDict[str], body: bytes) -> web.Response:
        headers = CIMultiDict(headers)
        headers.popall("Content-Length", None)
        return web.Response(status=status, body=body, headers=headers)

    async def sessions(self, request: web.Request) -> web.Response:
        answers = await self._ask_all(request)
        for link, answer in answers:
            if answer is None:
                raise link.down()
        lists: list[tuple[int, list[dict[str, Any]]]] = []
        for link, answer in answers:
            assert answer is not None
            status, headers, body = answer
            if status != 200:
                return self._passed_on(status, headers, body)
            lists.append((link.index, json.loads(body)))
        return web.json_response(merge_sessions(lists), headers={"Cache-Control": "no-store"})

    async def metrics(self, request: web.Request) -> web.Response:
        answers = await self._ask_all(request)
        texts: list[tuple[int, str]] = []
        for link, answer in answers:
            if answer is None:
                continue
            status, headers, body = answer
            if status != 200:
                return self._passed_on(status, headers, body)
            texts.append((link.index, body.decode("utf-8")))
        if not texts:
            raise self.links[0].down()
        return web.Response(text=merge_metrics(texts, self._own_metrics()),
                            headers={"Content-Type": METRICS_CONTENT_TYPE,
                                     "Cache-Control": "no-store"})

    def _own_metrics(self) -> str:
        return front_exposition(self.links)


FRONT_KEY = web.AppKey("camrelay_front", Front)
