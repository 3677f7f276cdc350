"""WS-Discovery against the fake responder: directed unicast, CIDR, multicast, quirks."""

from __future__ import annotations

import contextlib
import logging

import pytest

from camrelay.onvif import discovery
from camrelay.onvif.discovery import (
    MalformedAnswer,
    discover_unicast,
    expand_targets,
    iter_multicast,
    parse_probe_matches,
)
from tests.onvif.fakecam import FakeDiscoveryResponder, probe_matches


async def test_directed_unicast_finds_the_camera(responder: FakeDiscoveryResponder) -> None:
    responder.xaddrs = "http://127.0.0.1:8080/onvif/device_service"
    found = await discover_unicast(hosts=["127.0.0.1"], port=responder.port, timeout=5)
    assert len(found) == 1
    device = found[0]
    assert device.endpoint_reference == responder.endpoint_reference
    assert device.xaddrs == ("http://127.0.0.1:8080/onvif/device_service",)
    assert device.types == ("dn:NetworkVideoTransmitter", "tds:Device")
    assert device.scopes.name == "HIKVISION DS-2DE4A425IW-DE"
    assert device.scopes.hardware == "DS-2DE4A425IW-DE"
    assert device.scopes.location == "city/hangzhou"
    assert device.metadata_version == 10
    assert device.source == "127.0.0.1"
    assert device.port == 8080
    # the probe carried the MessageID the answer relates to
    assert len(responder.probes) == 1


async def test_cidr_probes_every_host_and_dedupes_by_endpoint_reference() -> None:
    # Bound to 0.0.0.0 the responder answers on both 127.0.0.1 and 127.0.0.2 (a /30):
    # the same camera seen twice is one device.
    fake = await FakeDiscoveryResponder().start(host="0.0.0.0")
    try:
        found = await discover_unicast(cidrs=["127.0.0.0/30"], port=fake.port, timeout=5)
    finally:
        fake.close()
    assert len(fake.probes) == 2  # 127.0.0.1 and 127.0.0.2; .0 and .3 are not hosts
    assert [d.endpoint_reference for d in found] == [fake.endpoint_reference]


async def test_quirks_are_survived(responder: FakeDiscoveryResponder,
                                   caplog: pytest.LogCaptureFixture) -> None:
    responder.quirks = frozenset({"malformed", "doctype", "unrelated", "duplicate"})
    responder.xaddrs = ("http://127.0.0.1:8000/onvif/device_service\n"
                        "   http://[fe80::1]:8000/onvif/device_service\r\n"
                        "http://127.0.0.1:8000/onvif/device_service not-a-url")
    with caplog.at_level(logging.DEBUG, logger="camrelay.onvif.discovery"):
        found = await discover_unicast(hosts=["127.0.0.1"], port=responder.port, timeout=5)
    assert [d.endpoint_reference for d in found] == [responder.endpoint_reference]
    assert found[0].xaddrs == ("http://127.0.0.1:8000/onvif/device_service",
                               "http://[fe80::1]:8000/onvif/device_service")
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "malformed answer" in messages and "did not send" in messages
    assert not any(r.exc_info for r in caplog.records)


async def test_answer_without_relates_to_is_accepted_from_a_probed_host(
        responder: FakeDiscoveryResponder) -> None:
    responder.quirks = frozenset({"no_relates_to"})
    found = await discover_unicast(hosts=["127.0.0.1"], port=responder.port, timeout=0.5)
    assert [d.endpoint_reference for d in found] == [responder.endpoint_reference]


def test_parse_rejects_what_is_not_probe_matches() -> None:
    with pytest.raises(MalformedAnswer):
        parse_probe_matches(b"\x00\x01garbage", "127.0.0.1")
    with pytest.raises(MalformedAnswer):
        parse_probe_matches(b"<html><body>hi</body></html>", "127.0.0.1")
    with pytest.raises(MalformedAnswer, match="document type"):
        parse_probe_matches(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "127.0.0.1")
    answer = parse_probe_matches(
        probe_matches(relates_to="urn:uuid:1", endpoint_reference="urn:uuid:cam",
                      xaddrs="http://10.1.2.3/onvif/device_service"), "10.1.2.3")
    assert answer.relates_to == "urn:uuid:1"
    assert answer.matches[0].port == 80


def test_expand_targets() -> None:
    assert expand_targets(["192.0.2.0/30"], ["127.0.0.1", "192.0.2.1"], 3702) == [
        ("192.0.2.1", 3702), ("192.0.2.2", 3702), ("127.0.0.1", 3702)]
    assert expand_targets(["192.0.2.7/32"]) == [("192.0.2.7", 3702)]
    with pytest.raises(ValueError):
        expand_targets(["10.0.0.0/8"])
    with pytest.raises(ValueError):
        expand_targets(["not-a-cidr"])


@pytest.mark.netns
async def test_multicast_inside_the_namespace(isolated: None) -> None:
    fake = await FakeDiscoveryResponder().start_multicast(discovery.MULTICAST_GROUP)
    try:
        async with contextlib.aclosing(iter_multicast(interface="127.0.0.1", port=fake.port,
                                                      timeout=10)) as devices:
            async for device in devices:
                assert device.endpoint_reference == fake.endpoint_reference
                break
            else:
                pytest.fail("no answer to the multicast probe")
    finally:
        fake.close()
    assert len(fake.probes) == 1
    assert fake.probes[0][0] == "127.0.0.1"
