"""The events channel's messages (camrelay.cluster.live): an event crosses as JSON with
its audience intact, a node skips its own messages, and a malformed one is dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from camrelay.cluster.live import LiveLink, event_from_wire, event_wire
from camrelay.events import Event, EventBus


def test_an_event_crosses_with_its_audience_and_a_node_skips_its_own() -> None:
    event = Event("alarm.raised", {"id": 7, "text": "桥梁 1 离线"}, camera_id=3,
                  roles=frozenset({"approver", "administrator"}),
                  user_ids=frozenset({4}), unit_ids=frozenset({2, 9}))
    assert event_from_wire(json.loads(json.dumps(event_wire(event)))) == event

    async def run() -> None:
        bus = EventBus()
        link = LiveLink(None, "n1:main", bus, None, timeout=1.0)  # type: ignore[arg-type]
        with bus.subscribe(4, 40, role="operator", unit_id=5) as sub, \
                bus.subscribe(6, 60, role="operator", unit_id=5) as other:
            for origin in ("n1:main", "n2:main"):
                link.receive(json.dumps({"o": origin, "e": event_wire(event)}))
            for junk in ("{", json.dumps({"o": "n2:main", "e": {"type": 1}}),
                         json.dumps({"o": "n2:main", "e": {**event_wire(event),
                                                           "unit_ids": ["x"]}})):
                link.receive(junk)
            got: Any = sub.queue.get_nowait()
            assert got == event and sub.queue.empty()  # once: its own copy was skipped
            assert other.queue.empty()  # not in the audience
            assert link.received == 3

    asyncio.run(run())
