"""Reading the fake camera through the real onvif-zeep-async client."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from camrelay.onvif.device import read_device, read_devices
from camrelay.onvif.errors import (
    NotOnvif,
    OnvifAuthFailed,
    OnvifError,
    OnvifTimeout,
    OnvifUnreachable,
)
from camrelay.onvif.models import Credentials, DeviceReport, DeviceTarget
from tests.onvif.fakecam import FakeCamera


def target_for(cam: FakeCamera, password: str | None = None) -> DeviceTarget:
    return DeviceTarget(cam.host, cam.port,
                        Credentials(cam.username, password if password else cam.password))


async def test_read_device_with_clock_skew(camera: FakeCamera,
                                           caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.DEBUG):
        report = await read_device(target_for(camera), timeout=30)
    assert isinstance(report, DeviceReport)
    # the fake's clock is 7 min 13 s ahead; its UsernameToken check passed only because
    # the Created timestamps were shifted by the measured skew
    assert report.clock_skew == pytest.approx(433, abs=2)
    assert camera.auth_failures == []
    assert camera.operations[0] == "GetSystemDateAndTime"
    assert report.info.manufacturer == "HIKVISION"
    assert report.info.model == "DS-2DE4A425IW-DE"
    assert report.info.serial_number == "DS-2DE4A425IW-DE20200617CCWRE12345678"
    assert report.info.firmware_version == "V5.6.15 build 200326"
    assert report.info.hardware_id == "88"
    assert [p.token for p in report.profiles] == ["Profile_1", "Profile_2"]
    main, sub = report.main, report.sub
    assert main is not None and sub is not None
    assert (main.profile.width, main.profile.height, main.profile.encoding) == (1920, 1080,
                                                                                 "H264")
    assert (main.profile.fps, main.profile.bitrate_kbps) == (25.0, 4096)
    assert (sub.profile.width, sub.profile.height) == (640, 360)
    # the camera advertises 127.0.0.3 (its LAN address behind NAT); everything is pinned
    # to the registered 127.0.0.1
    assert main.uri == ("rtsp://127.0.0.1:554/Streaming/Channels/101"
                        "?transportmode=unicast&profile=Profile_1")
    assert sub.uri.startswith("rtsp://127.0.0.1:554/Streaming/Channels/102")
    assert report.snapshot_uri == f"http://127.0.0.1:{camera.port}/onvif/snapshot?channel=1"
    assert report.ptz and report.ptz_profile_token == "Profile_1"
    assert "http://www.onvif.org/ver20/ptz/wsdl" in report.services
    # later calls went to the registered host only: the fake saw media and PTZ calls
    assert "/onvif/Media" in camera.paths
    # no SOAP body and no password in any log line
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert camera.password not in text
    assert "UsernameToken" not in text and "Envelope" not in text
    assert not loop.is_closed()


async def test_wrong_password_is_an_auth_error_without_the_password(
        camera: FakeCamera) -> None:
    wrong = "wr0ng-Passw0rd"
    with pytest.raises(OnvifAuthFailed) as info:
        await read_device(target_for(camera, wrong), timeout=30)
    assert wrong not in str(info.value) and wrong not in repr(info.value.problem())
    assert camera.password not in str(info.value)
    assert f"127.0.0.1:{camera.port}" in str(info.value)
    assert any("wrong digest" in f for f in camera.auth_failures)


async def test_wrong_password_with_http_401(camera: FakeCamera) -> None:
    camera.fault_status = 401
    with pytest.raises(OnvifAuthFailed):
        await read_device(target_for(camera, "nope"), timeout=30)


async def test_unreachable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OnvifUnreachable):
        await read_device(DeviceTarget("127.0.0.1", port, Credentials("a", "b")), timeout=10)


async def test_unknown_host_name_is_unreachable(isolated: None) -> None:
    # name resolution fails inside the namespace without a query leaving the machine
    with pytest.raises(OnvifUnreachable):
        await read_device(DeviceTarget("camera.invalid", 80, Credentials("a", "b")), timeout=10)


@pytest.fixture
async def web_server() -> AsyncIterator[int]:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body><h1>Router login</h1></body></html>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/", html)
    app.router.add_route("*", "/onvif/{tail:.*}", html)  # 200 text/html for SOAP calls
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_not_found_is_not_onvif(unused_tcp_port: int) -> None:
    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        with pytest.raises(NotOnvif, match="HTTP 404|not an ONVIF"):
            await read_device(DeviceTarget("127.0.0.1", unused_tcp_port, Credentials("a", "b")),
                              timeout=10)
    finally:
        await runner.cleanup()


async def test_a_web_server_that_is_not_onvif(web_server: int) -> None:
    with pytest.raises(NotOnvif) as info:
        await read_device(DeviceTarget("127.0.0.1", web_server, Credentials("a", "b")),
                          timeout=10)
    assert "ONVIF" in str(info.value)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_timeout(silent_server: int) -> None:
    with pytest.raises(OnvifTimeout):
        await read_device(DeviceTarget("127.0.0.1", silent_server, Credentials("a", "b")),
                          timeout=0.5)


async def test_read_devices_concurrently_keeps_order_and_errors(camera: FakeCamera) -> None:
    other = await FakeCamera(password="another-one").start()
    try:
        results = await read_devices(
            [target_for(camera), DeviceTarget(other.host, other.port,
                                              Credentials("admin", "wrong")),
             target_for(other)], concurrency=2, timeout=30)
    finally:
        await other.close()
    assert isinstance(results[0], DeviceReport)
    assert isinstance(results[1], OnvifAuthFailed)
    assert isinstance(results[2], DeviceReport) and results[2].port == other.port
    assert not isinstance(results[1], DeviceReport)
    assert isinstance(results[1], OnvifError)


BLOCK_CHECK = r"""
import asyncio, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
from tests.onvif.fakecam import FakeCamera
from camrelay.onvif.device import read_device
from camrelay.onvif.models import Credentials, DeviceTarget

async def main():
    asyncio.get_running_loop().slow_callback_duration = 0.1
    cam = await FakeCamera().start()
    try:
        creds = Credentials(cam.username, cam.password)
        report = await read_device(DeviceTarget(cam.host, cam.port, creds))
        print("MODEL", report.info.model)
    finally:
        await cam.close()

asyncio.run(main(), debug=True)
"""


async def test_cold_read_does_not_block_the_event_loop() -> None:
    """A fresh process (WSDLs not yet loaded) reads a device; asyncio debug mode reports
    any callback that held the loop for more than 100 ms."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BLOCK_CHECK, cwd=root,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 0, output
    assert "MODEL DS-2DE4A425IW-DE" in output
    assert "Executing" not in output, output
