"""Alarms: raised by the health checks, merged, cleared, routed to the responsible units,
acknowledged, pushed over the live channel and to a signed webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Role, TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.app import create_app
from camrelay.catalog.models import UnitLevel
from camrelay.errors import ConfigError
from camrelay.events import Event
from camrelay.fields import utcnow
from camrelay.health.alarms import AlarmFilter, Alarms
from camrelay.health.history import Verdict
from camrelay.settings import AlarmSettings, AlarmWebhook, Settings, load_settings
from camrelay.web.keys import EVENTS_KEY, JOURNAL_KEY, MONITOR_KEY
from tests.camsim_fixture import CamSim
from tests.conftest import World, auth
from tests.health.test_monitor import HEALTH
from tests.relay.camera_link import CameraLink
from tests.test_live_channel import read_event

SECRET = "webhook-test-secret"


async def _units_and_users(world: World) -> dict[str, str]:
    """A maintenance company under the province, an unrelated province; a token each."""
    await world.catalog.add_unit({"code": "330900", "name": "浙江交通设备维保中心",
                                  "level": UnitLevel.CITY, "parent": "330000"})
    await world.catalog.add_unit({"code": "320000", "name": "江苏省交通运输厅",
                                  "level": UnitLevel.PROVINCE, "parent": None})
    tokens = {}
    for name, unit in (("maint", "330900"), ("other", "320000"), ("county", "330110")):
        user = await world.accounts.add_user(name, unit_code=unit, role=Role.OPERATOR,
                                             password="correct horse 2")
        tokens[name], _ = await world.accounts.create_token(user.id, kind=TokenKind.API,
                                                            name="t")
    return tokens


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_repeats_merge_flapping_reopens_and_routes_follow_the_setting(
        world: World) -> None:
    await _units_and_users(world)
    camera = await world.catalog.add_camera({
        "external_id": "bridge-9", "name": "Bridge 9", "unit": "330110",
        "maintenance_unit": "330900", "category": "bridge"})
    alarms = Alarms(world.store, reopen_seconds=600)
    told: list[tuple[str, str]] = []
    alarms.listeners.append(lambda action, alarm: told.append((action, alarm.kind)))
    t0 = utcnow()
    for n in range(3):
        await alarms.observe(camera.id, Verdict("offline", "unreachable"),
                             now=t0 + timedelta(seconds=n))
    [one] = await alarms.list(None, AlarmFilter())
    assert (one.kind, one.severity, one.count, one.active) == ("offline", "critical", 3, True)
    assert one.units == ("330110", "330900") and one.value == {"reason": "unreachable"}
    assert one.raised_at == t0 and one.last_seen_at == t0 + timedelta(seconds=2)
    black = {"kind": "black", "value": 3.1, "threshold": 16.0}
    await alarms.observe(camera.id, Verdict("fault", "black", (black,)),
                         now=t0 + timedelta(seconds=10))
    assert told == [("raised", "offline"), ("cleared", "offline"), ("raised", "finding.black")]
    [finding] = await alarms.list(None, AlarmFilter(active=True))
    assert (finding.kind, finding.severity, finding.value) == ("finding.black", "minor", black)
    # back within reopen_seconds: the same row again, not a new alarm
    await alarms.observe(camera.id, Verdict("offline", "timeout"),
                         now=t0 + timedelta(seconds=20))
    rows = await alarms.list(None, AlarmFilter(kind="offline"))
    assert [(a.id, a.count, a.active, a.reason) for a in rows] == [
        (one.id, 4, True, "timeout")]
    await alarms.observe(camera.id, Verdict("online"), now=t0 + timedelta(seconds=30))
    assert await alarms.list(None, AlarmFilter(active=True)) == []
    # an alarm of another source (ONVIF events) is cleared by that source only
    [(_, tamper)] = await alarms.update(camera.id, {"onvif.tamper": ("tamper", {})},
                                        prefix="onvif.", now=t0 + timedelta(seconds=31))
    assert (tamper.kind, tamper.severity) == ("onvif.tamper", "major")
    assert await alarms.observe(camera.id, Verdict("online"),
                                now=t0 + timedelta(seconds=32)) == []
    [(action, _)] = await alarms.update(camera.id, {}, prefix="onvif.",
                                        now=t0 + timedelta(seconds=33))
    assert action == "cleared"
    # long after: a new alarm; with route_to_parents also the county's city and the
    # maintenance company's province
    parents = Alarms(world.store, route_to_parents=True, reopen_seconds=600)
    await parents.observe(camera.id, Verdict("fault", "auth"), now=t0 + timedelta(hours=1))
    [auth_alarm] = await parents.list(None, AlarmFilter(active=True))
    assert auth_alarm.kind == "fault.auth"
    assert auth_alarm.units == ("330000", "330100", "330110", "330900")
    # who sees what: the units' subtrees; an unrelated province nothing
    async with world.store.connect() as conn:
        from camrelay.catalog.service import subtree_ids
        jiangsu = frozenset(await subtree_ids(conn, (await world.catalog.get_unit(
            "320000")).id))
    assert await alarms.list(jiangsu, AlarmFilter()) == []
    assert await alarms.prune(0, now=t0 + timedelta(days=1)) == 3  # the cleared ones


async def _until(stream: ClientResponse, prefix: str) -> tuple[list[str], dict[str, Any]]:
    """Read events until one whose type starts with ``prefix``; (types seen, its data)."""
    seen = []
    while True:
        kind, data = await read_event(stream, timeout=15)
        seen.append(kind)
        if kind.startswith(prefix):
            return seen, data


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_camera_that_goes_away_raises_one_alarm_for_its_units_only(
        world: World, settings: Settings, camsim: CamSim,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = await _units_and_users(world)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        body = await request.read()
        stamp = request.headers["X-Camrelay-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers["X-Camrelay-Signature"], expected):
            return web.Response(status=401)
        attempts += 1
        if attempts <= 2:
            return web.Response(status=503)  # fails twice, then accepts
        received.put_nowait(json.loads(body))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/alarms", hook)
    link = CameraLink(camsim.port)
    await link.restore()
    camera = await world.catalog.add_camera({
        "external_id": "tunnel-7", "name": "Tunnel 7", "unit": "330110",
        "maintenance_unit": "330900", "category": "tunnel", "main_url": link.url("/h264")})
    async with TestServer(receiver, host="127.0.0.1") as hook_server:
        settings = replace(
            settings, health=HEALTH,
            relay=replace(settings.relay, connect_timeout=1.0, read_timeout=1.0),
            alarms=AlarmSettings(webhooks=[AlarmWebhook(
                url=str(hook_server.make_url("/alarms")), secret_env="TEST_HOOK_SECRET",
                units=["330900"])]))
        monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)  # read when the app is built
        app = create_app(settings, world.store)
        changed: asyncio.Queue[str] = asyncio.Queue()
        app[MONITOR_KEY].listeners.append(lambda cam, v: changed.put_nowait(v.status))
        try:
            async with TestClient(TestServer(app, host="127.0.0.1")) as client, \
                    client.get("/api/v1/events", headers=auth(tokens["maint"])) as maint, \
                    client.get("/api/v1/events", headers=auth(tokens["other"])) as other:
                assert (await read_event(maint))[0] == "hello"
                assert (await read_event(other))[0] == "hello"
                assert await asyncio.wait_for(changed.get(), 10) == "online"
                await link.cut()
                _, raised = await _until(maint, "alarm.")
                assert (raised["camera_id"], raised["kind"], raised["active"]) == (
                    camera.id, "offline", True)
                assert raised["units"] == ["330110", "330900"]
                await link.restore()
                seen, cleared = await _until(maint, "alarm.")
                assert seen[-1] == "alarm.cleared" and cleared["id"] == raised["id"]
                assert cleared["count"] >= 1 and cleared["cleared_at"]
                # the other province's user: nothing over the API ...
                r = await client.get("/api/v1/alarms", headers=auth(tokens["other"]))
                assert r.status == 200 and await r.json() == []
                r = await client.post(f"/api/v1/alarms/{raised['id']}/ack",
                                      json={"comment": "mine?"}, headers=auth(tokens["other"]))
                assert r.status == 404 and "detail" in await r.json()
                # ... the maintenance unit acknowledges it
                r = await client.get("/api/v1/alarms?active=false",
                                     headers=auth(tokens["maint"]))
                [listed] = await r.json()
                assert (listed["id"], listed["active"], listed["ack"]) == (
                    raised["id"], False, None)
                r = await client.post(f"/api/v1/alarms/{raised['id']}/ack",
                                      json={}, headers=auth(tokens["maint"]))
                assert r.status in (400, 422) and "detail" in await r.json()
                r = await client.post(f"/api/v1/alarms/{raised['id']}/ack",
                                      json={"comment": "fibre cut at km 12, crew sent"},
                                      headers=auth(tokens["maint"]))
                assert r.status == 200, await r.text()
                assert (await r.json())["ack"]["by"] == "maint"
                r = await client.post(f"/api/v1/alarms/{raised['id']}/ack",
                                      json={"comment": "again"}, headers=auth(tokens["maint"]))
                assert r.status == 409
                seen, acked = await _until(maint, "alarm.")
                assert seen[-1] == "alarm.acked" and acked["ack"]["comment"].startswith("fibre")
                # the county's own user sees it too; filters apply
                r = await client.get("/api/v1/alarms?unit=330110&kind=offline",
                                     headers=auth(tokens["county"]))
                assert [a["id"] for a in await r.json()] == [raised["id"]]
                r = await client.get("/api/v1/alarms?active=maybe",
                                     headers=auth(tokens["maint"]))
                assert r.status in (400, 422)
                r = await client.get("/api/v1/alarms?unit=320000",
                                     headers=auth(tokens["maint"]))
                assert r.status == 403
                # one raise, one clear, one ack on the maintenance channel; none elsewhere
                app[EVENTS_KEY].publish(Event("test.marker", {}))
                seen, _ = await _until(maint, "test.marker")
                assert not [s for s in seen if s.startswith("alarm.")]
                seen, _ = await _until(other, "test.marker")
                assert not [s for s in seen if s.startswith("alarm.")]
                # the webhook: signed, retried after two failures, in order
                deliveries = [await asyncio.wait_for(received.get(), 20) for _ in range(3)]
                assert [d["event"] for d in deliveries] == [
                    "alarm.raised", "alarm.cleared", "alarm.acked"]
                assert attempts == 5  # the raise took three attempts
                assert {d["alarm"]["id"] for d in deliveries} == {raised["id"]}
        finally:
            await link.cut()
    records = await app[JOURNAL_KEY].records(RecordFilter(kind="admin"), limit=10)
    [ack] = [x for x in records if x["action"] == "alarm.ack"]
    assert ack["user"] == "maint" and ack["camera_id"] == camera.id


def test_webhook_settings_are_checked_and_their_secret_masked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[alarms.webhooks]]\nurl = "https://u:p@duty.example/a"\n'
                    'secret = "s3cret-hook"\nunits = ["330100"]\n', encoding="utf-8")
    settings = load_settings(path, env={})
    [hook] = settings.alarms.webhooks
    assert hook.units == ["330100"] and hook.signing_key({}) == "s3cret-hook"
    dump = json.dumps(settings.redacted())
    assert "s3cret-hook" not in dump and "u:p@" not in dump
    path.write_text('[[alarms.webhooks]]\nurl = "https://duty.example/a"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="secret or secret_env"):
        load_settings(path, env={})
    path.write_text('[[alarms.webhooks]]\nurl = "ftp://x"\nsecret_env = "X"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="url"):
        load_settings(path, env={})
