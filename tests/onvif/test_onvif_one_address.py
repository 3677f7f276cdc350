"""Two ONVIF devices behind one IP address (port forwarding, multi-channel encoders).

Both answer WS-Discovery on one socket of 127.0.0.1; they differ only in their ports,
endpoint references, XAddrs and scopes.  Each must be reported once, with its own name
and its own serial.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from camrelay.cli import cli
from tests.onvif.fakecam import FakeCamera, FakeDiscoveryResponder, Neighbour


@dataclass
class TwoDevices:
    first: FakeCamera
    second: FakeCamera
    responder: FakeDiscoveryResponder
    second_epr: str


@pytest.fixture
async def two() -> AsyncIterator[TwoDevices]:
    first = await FakeCamera(serial_number="FIRST-0001").start()
    second = await FakeCamera(serial_number="SECOND-0002").start()
    second_epr = "urn:uuid:00000000-0000-4000-8000-000000000002"
    # the second device answers first: whoever takes the first answer for "the device at
    # 127.0.0.1" gets the wrong one
    responder = await FakeDiscoveryResponder(
        xaddrs=f"http://127.0.0.1:{first.port}/onvif/device_service", name="Gate North",
        neighbours=[Neighbour(second_epr,
                              f"http://127.0.0.1:{second.port}/onvif/device_service",
                              "Gate South")]).start()
    try:
        yield TwoDevices(first, second, responder, second_epr)
    finally:
        responder.close()
        await second.close()
        await first.close()


async def discover(two: TwoDevices, *hosts: str) -> list[dict[str, Any]]:
    args = ["discover", "--probe-port", str(two.responder.port), "--user",
            two.first.username, "--password-stdin", "--json"]
    for host in hosts:
        args += ["--host", host]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args,
                                     input=two.first.password + "\n")
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.output)
    return found


def summary(device: dict[str, Any]) -> tuple[int, str, str, str]:
    return (device["port"], device["discovery"]["scopes"]["name"],
            device["discovery"]["endpoint_reference"],
            device["report"]["info"]["serial_number"])


async def test_both_devices_named_are_reported_each_with_its_own_identity(
        two: TwoDevices) -> None:
    found = await discover(two, f"127.0.0.1:{two.first.port}", f"127.0.0.1:{two.second.port}")
    assert sorted(summary(d) for d in found) == sorted([
        (two.first.port, "Gate North", two.responder.endpoint_reference, "FIRST-0001"),
        (two.second.port, "Gate South", two.second_epr, "SECOND-0002"),
    ])
    assert sorted(d["external_id"] for d in found) == ["onvif:hikvision:FIRST-0001",
                                                       "onvif:hikvision:SECOND-0002"]


async def test_one_device_named_gets_its_own_answer_not_its_neighbours(
        two: TwoDevices) -> None:
    found = await discover(two, f"127.0.0.1:{two.first.port}")
    assert [summary(d) for d in found] == [
        (two.first.port, "Gate North", two.responder.endpoint_reference, "FIRST-0001")]
    found = await discover(two, f"127.0.0.1:{two.second.port}")
    assert [summary(d) for d in found] == [
        (two.second.port, "Gate South", two.second_epr, "SECOND-0002")]


async def test_the_address_alone_finds_every_device_behind_it_once(two: TwoDevices) -> None:
    found = await discover(two, "127.0.0.1")
    assert sorted(summary(d) for d in found) == sorted([
        (two.first.port, "Gate North", two.responder.endpoint_reference, "FIRST-0001"),
        (two.second.port, "Gate South", two.second_epr, "SECOND-0002"),
    ])
