"""scan(): discovery plus reading, errors kept."""

from __future__ import annotations

import socket

import pytest

from camrelay.onvif.models import Credentials
from camrelay.onvif.scan import parse_host, scan
from tests.onvif.fakecam import FakeCamera, FakeDiscoveryResponder


async def test_scan_discovers_and_reads(camera: FakeCamera,
                                        responder: FakeDiscoveryResponder) -> None:
    responder.xaddrs = f"http://127.0.0.1:{camera.port}/onvif/device_service"
    found = await scan(hosts=["127.0.0.1"], probe_port=responder.port,
                       credentials=Credentials(camera.username, camera.password), timeout=5)
    assert len(found) == 1
    device = found[0]
    assert device.ok and device.error is None
    assert (device.host, device.port) == ("127.0.0.1", camera.port)
    assert device.discovery is not None
    assert device.report is not None
    assert device.report.endpoint_reference == responder.endpoint_reference
    assert device.report.info.model == "DS-2DE4A425IW-DE"


async def test_scan_reports_devices_it_cannot_read(camera: FakeCamera,
                                                   responder: FakeDiscoveryResponder) -> None:
    responder.xaddrs = f"http://127.0.0.1:{camera.port}/onvif/device_service"
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        closed = sock.getsockname()[1]
    found = await scan(hosts=["127.0.0.1", f"127.0.0.2:{closed}"], probe_port=responder.port,
                       credentials=Credentials(camera.username, "wrong"), timeout=0.3)
    by_host = {f.host: f for f in found}
    assert by_host["127.0.0.1"].error_reason == "auth"
    assert by_host["127.0.0.1"].discovery is not None
    assert by_host["127.0.0.2"].error_reason == "unreachable"
    assert by_host["127.0.0.2"].discovery is None  # named by the technician, no answer
    assert "wrong" not in (by_host["127.0.0.1"].error or "")


def test_parse_host() -> None:
    assert parse_host("10.0.0.5") == ("10.0.0.5", None)
    assert parse_host("cam.local:8080") == ("cam.local", 8080)
    assert parse_host("[fe80::1]:80") == ("fe80::1", 80)
    assert parse_host("fe80::1") == ("fe80::1", None)
    with pytest.raises(ValueError):
        parse_host("cam:http")


async def test_a_named_host_keeps_its_name(camera: FakeCamera,
                                           responder: FakeDiscoveryResponder) -> None:
    # "localhost" answers from 127.0.0.1: the device is registered as the technician wrote it
    responder.xaddrs = f"http://127.0.0.1:{camera.port}/onvif/device_service"
    found = await scan(hosts=[f"localhost:{camera.port}"], probe_port=responder.port,
                       credentials=Credentials(camera.username, camera.password), timeout=5)
    assert [(f.host, f.port, f.ok) for f in found] == [("localhost", camera.port, True)]
    assert found[0].discovery is not None
