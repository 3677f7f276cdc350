"""The health check, the OpenAPI document and the console's pages."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from camrelay.web.keys import OPENAPI_KEY, STORE_KEY
from camrelay.web.openapi import Api, Operation

STATIC = Path(__file__).parent / "static"

api = Api()


@api.route("GET", "/healthz", summary="Liveness and store check", tag="meta", public=True,
           ok={"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string"}}}, errors=())
async def healthz(request: web.Request) -> web.Response:
    async with request.app[STORE_KEY].connect() as conn:
        from sqlalchemy import text

        await conn.execute(text("SELECT 1"))
    return web.json_response({"status": "ok"})


@api.route("GET", "/api/v1/openapi.json", summary="This document", tag="meta", public=True,
           ok={"type": "object"}, errors=())
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "index.html")


async def player(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "player.html")


async def screen(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "screen.html")


async def field(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "field.html")


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console" / "favicon.svg")


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/player", player)
    app.router.add_get("/screen", screen)
    app.router.add_get("/field", field)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static", STATIC)


pages = Api()
pages.document_route(Operation(
    method="GET", path="/", summary="The console: sign-in and the video wall (HTML)",
    tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
pages.document_route(Operation(
    method="GET", path="/player", summary="The single-camera player page (HTML)",
    tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
pages.document_route(Operation(
    method="GET", path="/field",
    summary="The field page (HTML): a phone at the scene signs in and publishes its camera "
            "and microphone to a field camera over WHIP, with its position",
    tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
pages.document_route(Operation(
    method="GET", path="/screen",
    summary="A wall screen's kiosk page (HTML): ?screen=<name>, the service account's token "
            "in the fragment (#token=...), never sent to the server",
    tag="pages", public=True, responses={200: ("HTML page", None, "text/html")}))
pages.document_route(Operation(
    method="GET", path="/favicon.ico", summary="The console's icon (SVG)",
    tag="pages", public=True, responses={200: ("SVG picture", None, "image/svg+xml")}))
