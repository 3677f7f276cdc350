"""``camrelay discover`` against the fake camera (reading only; registration is the API's)."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from camrelay.cli import cli
from tests.onvif.fakecam import FakeCamera, FakeDiscoveryResponder


async def test_discover_json(camera: FakeCamera, responder: FakeDiscoveryResponder) -> None:
    responder.xaddrs = f"http://127.0.0.1:{camera.port}/onvif/device_service"
    args = ["discover", "--host", f"127.0.0.1:{camera.port}", "--probe-port",
            str(responder.port), "--user", camera.username, "--password-stdin", "--json"]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args,
                                     input=camera.password + "\n")
    assert result.exit_code == 0, result.output
    [device] = json.loads(result.output)
    assert device["report"]["info"]["model"] == "DS-2DE4A425IW-DE"
    assert device["external_id"] == "onvif:hikvision:DS-2DE4A425IW-DE20200617CCWRE12345678"
    assert device["discovery"]["endpoint_reference"] == responder.endpoint_reference
    assert camera.password not in result.output


async def test_discover_table_shows_the_error(camera: FakeCamera,
                                              responder: FakeDiscoveryResponder) -> None:
    responder.xaddrs = f"http://127.0.0.1:{camera.port}/onvif/device_service"
    args = ["discover", "--host", "127.0.0.1", "--probe-port", str(responder.port),
            "--user", "admin", "--password-stdin"]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, input="wrong-one\n")
    assert result.exit_code == 1
    assert "auth: The camera at 127.0.0.1" in result.output
    assert "wrong-one" not in result.output
    assert "Traceback" not in result.output


def test_discover_needs_a_place_to_look() -> None:
    result = CliRunner().invoke(cli, ["discover"])
    assert result.exit_code == 2
