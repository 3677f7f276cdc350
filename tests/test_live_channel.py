"""The live channel: the event bus (bounded, a slow reader dropped) and
GET /api/v1/events through the real app (who sees what, sign-out, the document)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from camrelay.access.journal import RecordFilter
from camrelay.events import QUEUE_SIZE, Event, EventBus
from camrelay.settings import Settings
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import WITH_PASSWORD, Folks, folks  # noqa: F401
from tests.conftest import auth


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the channel keeps the listing rule: in "subtree" a county sees only its own cameras
    return replace(settings, catalog=replace(settings.catalog, visibility="subtree"))


async def read_event(response: ClientResponse, timeout: float = 5.0) -> tuple[str, Any]:
    """The next event (comments skipped) as (type, data)."""
    kind, data = "message", []
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode()
            if line == "":
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                return kind, json.loads("\n".join(data))


def test_a_slow_reader_is_dropped_not_buffered() -> None:
    async def run() -> None:
        bus = EventBus()
        with bus.subscribe(1, 10) as slow, bus.subscribe(2, 20) as other:
            for n in range(QUEUE_SIZE + 5):
                bus.publish(Event("camera.status", {"n": n}, camera_id=1))
            assert slow.dropped and other.dropped and len(bus) == 0
            assert bus.dropped_total == 2
            assert slow.queue.qsize() == QUEUE_SIZE  # bounded; the last entry ends it
            items = [slow.queue.get_nowait() for _ in range(QUEUE_SIZE)]
            assert items[-1] is None and items[0] is not None
        with bus.subscribe(1, 10) as mine, bus.subscribe(2, 20) as theirs:
            bus.publish(Event("view.revoked", {"reason": "grant revoked"}, user_id=1))
            bus.publish(Event("token.revoked", {"reason": "signed out"}, token_id=20))
            assert [e.type for e in [mine.queue.get_nowait()]] == ["view.revoked"]
            assert theirs.queue.get_nowait().type == "token.revoked"  # type: ignore[union-attr]
            assert mine.queue.empty() and theirs.queue.empty()

    asyncio.run(run())


async def test_events_route_filters_by_listing_scope_and_needs_a_token(
        client: TestClient[Any, Any], folks: Folks) -> None:  # noqa: F811
    r = await client.get("/api/v1/events")
    assert r.status == 401
    async with client.get("/api/v1/events", headers=folks.h("county_op")) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await read_event(stream) == ("hello", {
            "user": "county_op", "unit": "330110", "role": "operator",
            "keepalive_seconds": 15.0})
        for name in ("other", "county"):  # the city of Ningbo's camera is not the county's
            r = await client.patch(f"/api/v1/cameras/{folks.cameras[name]}",
                                   json={"status": "fault"}, headers=folks.h("admin"))
            assert r.status == 200, await r.text()
        assert await read_event(stream) == ("camera.status", {
            "camera_id": folks.cameras["county"], "status": "fault"})


async def test_sign_out_revokes_the_token_ends_its_channel_and_is_journalled(
        client: TestClient[Any, Any], folks: Folks) -> None:  # noqa: F811
    user = min(WITH_PASSWORD)
    r = await client.post("/api/v1/auth/login",
                          json={"username": user, "password": "correct horse battery"})
    assert r.status == 200
    token = (await r.json())["token"]
    async with client.get("/api/v1/events", headers=auth(token)) as stream:
        assert (await read_event(stream))[0] == "hello"
        r = await client.post("/api/v1/auth/logout", headers=auth(token))
        assert r.status == 200 and await r.json() == {"revoked": True}
        assert await read_event(stream) == ("token.revoked",
                                            {"reason": "signed out", "by": None})
        with pytest.raises(EOFError):
            await read_event(stream)
    r = await client.get("/api/v1/auth/me", headers=auth(token))
    assert r.status == 401
    records = await client.app[JOURNAL_KEY].records(RecordFilter(kind="auth"), limit=10)
    assert [x["user"] for x in records if x["action"] == "logout"] == [user]


async def test_the_channel_is_in_the_openapi_document(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    op = doc["paths"]["/api/v1/events"]["get"]
    text = op["responses"]["200"]["description"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    for kind in ("camera.status", "stream.state", "view.revoked", "token.revoked"):
        assert kind in text
    assert doc["paths"]["/api/v1/auth/logout"]["post"]


async def test_stream_states_are_published_with_a_reason_code_never_the_address() -> None:
    import socket

    from camrelay.events import stream_state_publisher
    from camrelay.relay.hub import Hub
    from camrelay.relay.media import StreamKey
    from camrelay.relay.sources.registry import default_sources
    from camrelay.relay.stream import SourceSpec

    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    specs = {1: SourceSpec("demo:?width=160&height=96&fps=10&gop=1"),
             2: SourceSpec(f"rtsp://user:secret@127.0.0.1:{closed}/x", connect_timeout=1)}

    async def resolve(key: StreamKey) -> SourceSpec:
        return specs[key.camera_id]

    bus = EventBus()
    async with Hub(resolve, default_sources(), linger=0.1, backoff_initial=5) as hub:
        hub.watch(stream_state_publisher(bus))
        with bus.subscribe(1, 1) as sub:
            live = await hub.subscribe(StreamKey(1, "sub"))
            with pytest.raises(Exception):  # noqa: B017 - the refusal's own type
                await hub.subscribe(StreamKey(2, "main"), timeout=3)
            live.close()
            seen = []
            while not sub.queue.empty():
                event = sub.queue.get_nowait()
                assert event is not None
                seen.append((event.data["camera_id"], event.data["stream"],
                             event.data["state"], event.data["reason"]))
    assert seen[:2] == [(1, "sub", "connecting", None), (1, "sub", "live", None)]
    assert (2, "main", "connecting", None) in seen
    assert (2, "main", "reconnecting", "unreachable") in seen
    assert "secret" not in repr(seen) and str(closed) not in repr(seen)


async def test_grant_decisions_and_emergencies_reach_those_concerned(
        client: TestClient[Any, Any], folks: Folks) -> None:  # noqa: F811
    from datetime import timedelta

    from camrelay.fields import utcnow

    county = folks.cameras["county"]
    async with client.get("/api/v1/events", headers=folks.h("approver")) as approver, \
            client.get("/api/v1/events", headers=folks.h("county_op")) as requester, \
            client.get("/api/v1/events", headers=folks.h("other_op")) as bystander:
        for stream in (approver, requester, bystander):
            assert (await read_event(stream))[0] == "hello"
        r = await client.post("/api/v1/grants", headers=folks.h("county_op"), json={
            "grantee_user": "county_op", "cameras": [folks.cameras["city"]],
            "actions": ["live"], "purpose": "G60 事故",
            "valid_until": (utcnow() + timedelta(hours=8)).isoformat()})
        assert r.status == 201, await r.text()
        grant = (await r.json())["id"]
        for stream in (approver, requester):
            kind, data = await read_event(stream)
            assert (kind, data["id"], data["status"]) == ("grant.requested", grant, "pending")
        r = await client.post(f"/api/v1/grants/{grant}/approve", json={"comment": "ok"},
                              headers=folks.h("approver"))
        assert r.status == 200, await r.text()
        kind, data = await read_event(requester)
        assert (kind, data["id"], data["status"]) == ("grant.decided", grant, "active")
        assert (await read_event(approver))[0] == "grant.decided"
        r = await client.post("/api/v1/emergencies", headers=folks.h("county_op"), json={
            "reason": "隧道火灾", "incident": "ZJ-0815", "cameras": [county]})
        assert r.status == 201, await r.text()
        em = (await r.json())["id"]
        kind, data = await read_event(approver)
        assert (kind, data["id"], data["incident"]) == ("emergency.opened", em, "ZJ-0815")
        assert (await read_event(requester))[0] == "emergency.opened"  # the opener's unit
        r = await client.post(f"/api/v1/emergencies/{em}/revoke", json={"comment": "drill"},
                              headers=folks.h("approver"))
        assert r.status == 200, await r.text()
        kind, data = await read_event(requester)
        assert (kind, data["status"], data["comment"]) == ("emergency.revoked", "revoked",
                                                          "drill")
        # the bystander (another city's operator) heard none of it: its next event is
        # the status change of a camera it may list
        r = await client.patch(f"/api/v1/cameras/{folks.cameras['other']}",
                               json={"status": "fault"}, headers=folks.h("admin"))
        assert r.status == 200, await r.text()
        assert await read_event(bystander) == ("camera.status", {
            "camera_id": folks.cameras["other"], "status": "fault"})


async def test_the_listing_marks_cameras_watched_under_emergency_access(
        client: TestClient[Any, Any], folks: Folks) -> None:  # noqa: F811
    county, other = folks.cameras["county"], folks.cameras["other"]

    async def marks() -> dict[int, Any]:
        page = await (await client.get("/api/v1/cameras", headers=folks.h("county_op"))).json()
        return {c["id"]: c["emergency"] for c in page["items"]}

    assert (await marks())[county] is None
    r = await client.post("/api/v1/emergencies", headers=folks.h("county_op"), json={
        "reason": "隧道火灾", "incident": "ZJ-0815", "unit_scope": "330200"})
    assert r.status == 201, await r.text()
    em = (await r.json())["id"]
    listed = await marks()  # Ningbo's cameras are listed (subtree visibility) and marked
    assert listed[other] == em and listed[county] is None
