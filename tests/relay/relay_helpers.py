"""Helpers shared by the relay tests (decoding, waiting on conditions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import av
import numpy as np

from camrelay.relay import h264
from camrelay.relay.hub import Hub
from camrelay.relay.media import AccessUnit, StreamKey
from camrelay.relay.sources.pattern import read_frame_number

HubFactory = Callable[..., Awaitable[Hub]]


def nal_types(unit: AccessUnit) -> list[int]:
    return [h264.nal_type(n) for n in h264.split_annexb(unit.data)]


def decode_numbers(units: Iterable[AccessUnit]) -> list[int]:
    """Decode H.264 units with PyAV and read each picture's burnt-in frame number."""
    dec = av.CodecContext.create("h264", "r")
    numbers = []
    for unit in units:
        for frame in dec.decode(av.Packet(unit.data)):
            numbers.append(read_frame_number(frame.to_ndarray(format="gray")))
    return numbers


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll a condition (state owned by the hub) until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


def state_of(hub: Hub, key: StreamKey) -> str | None:
    for status in hub.status():
        if status.key == key:
            return status.state
    return None


def gray(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="gray")
