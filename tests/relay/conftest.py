"""Fixtures for the relay tests: the camera simulator and hubs that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import pytest

from camrelay.errors import CameraNotFound
from camrelay.relay.hub import Hub
from camrelay.relay.media import StreamKey
from camrelay.relay.sources.registry import default_sources
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
def rtsp_client() -> Literal["native", "ffmpeg"] | None:
    """The RTSP client ``make_hub`` puts into every rtsp:// spec; None keeps each spec's
    own (the default, native).  A module overrides this fixture, parametrised, to run
    its tests against both clients."""
    return None


@pytest.fixture
async def make_hub(
        rtsp_client: Literal["native", "ffmpeg"] | None) -> AsyncIterator[HubFactory]:
    hubs: list[Hub] = []

    async def make(specs: dict[int, SourceSpec], **kwargs: Any) -> Hub:
        kwargs.setdefault("linger", 0.2)
        kwargs.setdefault("backoff_initial", 0.2)
        if rtsp_client is not None:
            specs = {camera: replace(spec, client=rtsp_client)
                     if spec.url.startswith("rtsp://") else spec
                     for camera, spec in specs.items()}
        hub = Hub(resolver_for(specs), default_sources(), **kwargs)
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.stop()


@pytest.fixture
def sim(camsim: CamSim) -> CamSim:  # noqa: F811
    return camsim
