"""Drills, the tree's thumbnails and the ``camrelay health`` / ``drill`` CLI on a real app
whose checks open the real RTSP simulator: one good camera, one behind a cut link, one
with a wrong password on the simulator's digest-auth mount."""

from __future__ import annotations

import asyncio
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import Role, TokenKind
from camrelay.access.journal import RecordFilter
from camrelay.app import create_app
from camrelay.catalog.models import UnitLevel
from camrelay.settings import Settings
from camrelay.web.api_drills import RUNNER_KEY
from camrelay.web.keys import DRILLS_KEY, JOURNAL_KEY
from tests.camsim_fixture import CamSim
from tests.catalog.conftest import Run, run_cli
from tests.conftest import World, auth
from tests.health.test_monitor import HEALTH
from tests.relay.camera_link import CameraLink

EVIL = "<script>x</script>"


@dataclass
class Site:
    client: TestClient[Any, Any]
    world: World
    good: int
    cut: int
    wrong_password: int
    viewer_token: str
    stranger_token: str

    @property
    def env(self) -> dict[str, str | None]:
        return {"CAMRELAY_URL": str(self.client.server.make_url("")).rstrip("/"),
                "CAMRELAY_TOKEN": self.world.admin_token}

    async def cli(self, *args: str) -> Run:
        run = await asyncio.to_thread(run_cli, args, env=self.env)
        assert "Traceback" not in run.text, run.text
        return run


@pytest.fixture
async def site(world: World, settings: Settings, camsim: CamSim) -> AsyncIterator[Site]:
    async with open_site(world, settings, camsim) as site:
        yield site


@asynccontextmanager
async def open_site(world: World, settings: Settings, camsim: CamSim,
                    drill_every_hours: float = 0.0) -> AsyncIterator[Site]:
    link = CameraLink(camsim.port)
    await link.cut()  # this camera's cable is cut for the whole test
    catalog = world.catalog
    good = await catalog.add_camera({
        "external_id": "good-1", "name": "Bridge 1", "unit": "330110", "category": "bridge",
        "main_url": camsim.url("/h264")})
    cut = await catalog.add_camera({
        "external_id": "cut-1", "name": EVIL, "unit": "330100", "category": "bridge",
        "main_url": link.url("/h264")})
    wrong = await catalog.add_camera({
        "external_id": "auth-1", "name": "Toll gate 3", "unit": "330110", "category": "bridge",
        "main_url": camsim.url("/auth"), "username": CamSim.USER,
        "password": "not-the-password"})
    await catalog.add_unit({"code": "320000", "name": "江苏省交通运输厅",
                            "level": UnitLevel.PROVINCE, "parent": None})
    accounts = world.accounts
    viewer = await accounts.add_user("yh-viewer", unit_code="330110", role=Role.VIEWER,
                                     password="correct horse 3")
    viewer_token, _ = await accounts.create_token(viewer.id, kind=TokenKind.API, name="t")
    stranger = await accounts.add_user("js-admin", unit_code="320000",
                                       role=Role.ADMINISTRATOR, password="correct horse 2")
    stranger_token, _ = await accounts.create_token(stranger.id, kind=TokenKind.API, name="t")
    # no scheduled checks: what the test sees comes from the drills it starts.  The
    # simulator replays its clip from the start for each session, so every drill's probe
    # sees the same first keyframe: "frozen" from the second drill on, unless raised.
    health = replace(HEALTH, enabled=False, drill_every_hours=drill_every_hours,
                     diagnosis=replace(HEALTH.diagnosis, frozen_samples=100))
    settings = replace(settings, health=health,
                       relay=replace(settings.relay, connect_timeout=1.0, read_timeout=1.0))
    app = create_app(settings, world.store)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Site(client, world, good.id, cut.id, wrong.id, viewer_token, stranger_token)
    finally:
        await link.cut()


async def drill(site: Site, unit: str = "330000") -> dict[str, Any]:
    resp = await site.client.post("/api/v1/drills?wait=true", json={"unit": unit},
                                  headers=auth(site.world.admin_token))
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs = attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_a_drill_lists_exactly_the_broken_cameras_and_renders_a_safe_page(
        site: Site) -> None:
    result = await drill(site)
    assert result["state"] == "done" and result["started_by"] == "admin"
    report = result["report"]
    assert {(b["camera_id"], b["status"], b["reason"]) for b in report["broken"]} == {
        (site.cut, "offline", "unreachable"), (site.wrong_password, "fault", "auth")}
    totals = report["totals"]
    assert (totals["total"], totals["online"], totals["faulty"], totals["unchecked"]) == (
        3, 1, 2, 0)
    assert report["totals"]["reasons"] == {"auth": 1, "unreachable": 1}
    units = {u["unit"]: u for u in report["units"]}
    assert set(units) == {"330100", "330110"}
    assert (units["330100"]["total"], units["330100"]["faulty"]) == (1, 1)
    county = units["330110"]
    assert (county["total"], county["online"], county["faulty"]) == (2, 1, 1)
    assert county["reasons"] == {"auth": 1} and county["name"] == "余杭区交通运输局"
    assert 0 < county["first_frame"]["median"] <= county["first_frame"]["worst"] < 10
    assert units["330100"]["first_frame"] == {"median": None, "worst": None}
    # the checks went into the history: the week's availability comes from it
    assert 0 < county["availability_week"] < 1 and units["330100"]["availability_week"] == 0

    listed = await (await site.client.get("/api/v1/drills",
                                          headers=auth(site.world.admin_token))).json()
    assert [(d["id"], d["totals"]["faulty"]) for d in listed] == [(result["id"], 2)]

    resp = await site.client.get(f"/api/v1/drills/{result['id']}.html",
                                 headers=auth(site.world.admin_token))
    assert resp.status == 200 and resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "http" not in csp
    page = await resp.text()
    same = await site.client.get(f"/api/v1/drills/{result['id']}?format=html",
                                 headers=auth(site.world.admin_token))
    assert await same.text() == page
    parsed = Tags()
    parsed.feed(page)
    parsed.close()
    assert "script" not in parsed.tags and EVIL not in page
    assert EVIL in "".join(parsed.text)  # shown, as text
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from anywhere
    assert page.count("<svg") == 2 and "巡检演练报告" in page and "Drill report" in page
    for svg in page.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # well-formed
    assert "<rect" in page and "<circle" in page

    # journalled as an administrative action: who and which unit
    journal = site.client.server.app[JOURNAL_KEY]
    [event] = await journal.records(RecordFilter(kind="admin"))
    assert (event["action"], event["user"], event["detail"]) == (
        "health.drill", "admin", {"drill": result["id"], "unit": "330000"})

    # another jurisdiction sees neither the drill nor its page, and cannot start one here
    for path in ("/api/v1/drills", f"/api/v1/drills/{result['id']}",
                 f"/api/v1/drills/{result['id']}.html"):
        resp = await site.client.get(path, headers=auth(site.stranger_token))
        assert resp.status in (200, 404) and "330000" not in await resp.text(), path
    resp = await site.client.post("/api/v1/drills", json={"unit": "330000"},
                                  headers=auth(site.stranger_token))
    assert resp.status == 403 and "detail" in await resp.json()
    resp = await site.client.post("/api/v1/drills", json={"unit": "330110"},
                                  headers=auth(site.viewer_token))
    assert resp.status == 403  # viewers do not run drills
    resp = await site.client.get("/api/v1/drills/abc", headers=auth(site.world.admin_token))
    assert resp.status == 404 and "detail" in await resp.json()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_thumbnails_go_only_to_who_may_watch_and_are_journalled(site: Site) -> None:
    resp = await site.client.get(f"/api/v1/cameras/{site.good}/thumbnail",
                                 headers=auth(site.viewer_token))
    assert resp.status == 404  # not checked yet: no picture kept
    await drill(site, "330110")
    resp = await site.client.get(f"/api/v1/cameras/{site.good}/thumbnail",
                                 headers=auth(site.viewer_token))
    assert resp.status == 200 and resp.content_type == "image/jpeg"
    with av.open(io.BytesIO(await resp.read())) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (160, 90)  # 640x360 at 160 pixels wide
    # a camera whose check got no picture has none
    resp = await site.client.get(f"/api/v1/cameras/{site.wrong_password}/thumbnail",
                                 headers=auth(site.viewer_token))
    assert resp.status == 404
    # a user of an unrelated unit gets nothing
    resp = await site.client.get(f"/api/v1/cameras/{site.good}/thumbnail",
                                 headers=auth(site.stranger_token))
    assert resp.status in (403, 404) and "detail" in await resp.json()
    journal = site.client.server.app[JOURNAL_KEY]
    views = await journal.records(RecordFilter(camera_id=site.good))
    shown = [(v["kind"], v["action"], v["user"], (v["detail"] or {}).get("via"), v["result"],
              v["close_reason"]) for v in views]
    assert sorted(shown, key=str) == sorted([
        ("view", "snapshot", "yh-viewer", "thumbnail", "allowed", "failed"),  # none yet
        ("view", "snapshot", "yh-viewer", "thumbnail", "allowed", "ended"),
        ("denied", "snapshot", "js-admin", "thumbnail", "denied", None)], key=str), shown


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_cli_prints_the_problems_and_runs_a_drill(site: Site) -> None:
    await drill(site)
    run = await site.cli("health", "--problems", "--unit", "330000")
    assert run.code == 0, run
    assert "Toll gate 3" in run.out and EVIL in run.out and "Bridge 1" not in run.out
    assert "unreachable" in run.out and "auth" in run.out and "DOWN" in run.out
    run = await site.cli("health", "--unit", "330110", "--json")
    assert run.code == 0, run
    rows = json.loads(run.out)
    assert {(r["name"], r["status"]) for r in rows} == {("Bridge 1", "online"),
                                                        ("Toll gate 3", "fault")}
    run = await site.cli("health", "--unit", "nope")
    assert run.code == 1 and len(run.err.strip().splitlines()) == 1, run

    run = await site.cli("drill", "run", "--unit", "330110", "--json")
    assert run.code == 0, run
    report = json.loads(run.out)["report"]
    assert [(b["name"], b["reason"]) for b in report["broken"]] == [("Toll gate 3", "auth")]
    run = await site.cli("drill", "list")
    assert run.code == 0 and run.out.count("done") == 2, run
    run = await site.cli("drill", "show", str(json.loads(
        (await site.cli("drill", "list", "--json")).out)[-1]["id"]))
    assert run.code == 0 and "broken cameras:" in run.out and EVIL in run.out, run


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_scheduled_drills_cover_each_top_unit_and_are_journalled(
        world: World, settings: Settings, camsim: CamSim) -> None:
    async with open_site(world, settings, camsim, drill_every_hours=1 / 3600) as site:
        ended: asyncio.Queue[int] = asyncio.Queue()
        site.client.server.app[RUNNER_KEY].listeners.append(ended.put_nowait)
        drills = {}
        for _ in range(2):  # one per top unit, one after the other
            drill_id = await asyncio.wait_for(ended.get(), 30)
            _, drill = await site.client.server.app[DRILLS_KEY].get(drill_id)
            drills[drill["unit"]] = drill
        assert {(u, d["state"], d["scheduled"], d["started_by"])
                for u, d in drills.items()} == {("330000", "done", True, None),
                                                ("320000", "done", True, None)}
        assert {b["camera_id"] for b in drills["330000"]["report"]["broken"]} == {
            site.cut, site.wrong_password}
        assert drills["320000"]["report"]["totals"]["total"] == 0
        first, second = drills["330000"]["id"], drills["320000"]["id"]
        events = await site.client.server.app[JOURNAL_KEY].records(RecordFilter(kind="admin"))
        scheduled = [e for e in events if e["action"] == "health.drill"]
        assert {(e["user"], e["unit"], e["detail"]["drill"], e["detail"]["scheduled"])
                for e in scheduled} >= {(None, "330000", first, True),
                                        (None, "320000", second, True)}
