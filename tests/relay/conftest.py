"""Fixtures for the relay tests: the camera simulator and hubs that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from camrelay.errors import CameraNotFound
from camrelay.relay.hub import Hub
from camrelay.relay.media import StreamKey
from camrelay.relay.stream import SourceSpec
from tests.camsim_fixture import CamSim, camsim, camsim_clips  # noqa: F401  (fixtures)
from tests.relay.relay_helpers import HubFactory


def resolver_for(specs: dict[int, SourceSpec]) -> Callable[[StreamKey], Awaitable[SourceSpec]]:
    async def resolve(key: StreamKey) -> SourceSpec:
        try:
            return specs[key.camera_id]
        except KeyError:
            raise CameraNotFound(f"camera {key.camera_id} not found") from None

    return resolve


@pytest.fixture
async def make_hub() -> AsyncIterator[HubFactory]:
    hubs: list[Hub] = []

    async def make(specs: dict[int, SourceSpec], **kwargs: Any) -> Hub:
        kwargs.setdefault("linger", 0.2)
        kwargs.setdefault("backoff_initial", 0.2)
        hub = Hub(resolver_for(specs), **kwargs)
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.stop()


@pytest.fixture
def sim(camsim: CamSim) -> CamSim:  # noqa: F811
    return camsim
