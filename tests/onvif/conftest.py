"""Fixtures for the ONVIF tests: the fake camera and its WS-Discovery responder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.onvif.fakecam import FakeCamera, FakeDiscoveryResponder, in_isolated_namespace


@pytest.fixture
async def camera() -> AsyncIterator[FakeCamera]:
    cam = await FakeCamera().start()
    try:
        yield cam
    finally:
        await cam.close()


@pytest.fixture
async def responder() -> AsyncIterator[FakeDiscoveryResponder]:
    fake = await FakeDiscoveryResponder().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def isolated() -> None:
    """For tests that would send traffic beyond loopback anywhere else (multicast, DNS)."""
    if not in_isolated_namespace():
        pytest.fail("this test runs only inside the loopback-only network namespace; run it "
                    "through scripts/test", pytrace=False)
