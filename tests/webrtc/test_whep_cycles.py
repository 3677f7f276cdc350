"""Many join/leave cycles leave nothing behind: no sessions, tasks, threads, subscriptions."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from tests.webrtc.conftest import Relay
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns

CYCLES = 100


async def test_join_leave_cycles_leak_nothing(relay: Relay) -> None:
    # warm up: the stream, the executor threads, aiortc's module state
    first = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice", read_numbers=False)
    await first.wait_frames(1)
    await first.close()
    gc.collect()
    tasks_before_set = set(asyncio.all_tasks())
    tasks_before = len(tasks_before_set)
    threads_before = threading.active_count()
    decoded = 0
    for i in range(CYCLES):
        viewer = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice",
                                          read_numbers=False)
        if i % 10 == 0:  # every tenth viewer waits for a picture; the others leave early
            await viewer.wait_frames(1)
            decoded += 1
        await viewer.close()
    assert decoded == CYCLES // 10
    assert len(relay.egress) == 0
    assert relay.open_subscriptions() == 0
    assert relay.gate.open_views() == []
    # aiortc's teardown tasks finish on their own; wait for them with a bound
    try:
        async with asyncio.timeout(10):
            while len(asyncio.all_tasks()) > tasks_before:
                await asyncio.sleep(0.05)  # polling task count: no event for "others done"
    except TimeoutError:
        raise AssertionError(_describe(asyncio.all_tasks() - tasks_before_set)) from None
    assert threading.active_count() <= threads_before + 2
    gc.collect()
    from camrelay.relay.sinks.webrtc import WebRtcSession

    alive = [o for o in gc.get_objects() if isinstance(o, WebRtcSession)]
    assert alive == []


def _describe(tasks: set[asyncio.Task[object]]) -> list[str]:
    return sorted(repr(t.get_coro()) for t in tasks)
