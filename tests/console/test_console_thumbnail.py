"""The tree shows a camera's thumbnail (its latest health check) while the pointer rests
on the row; the fetch is journalled as a snapshot access."""

from __future__ import annotations

import pytest

from camrelay.access.journal import RecordFilter
from camrelay.web.keys import JOURNAL_KEY
from tests.conftest import auth
from tests.console.conftest import Hall

pytestmark = pytest.mark.netns


async def test_hovering_a_checked_camera_shows_its_thumbnail(hall: Hall) -> None:
    camera = hall.folks.cameras["county"]
    resp = await hall.client.post("/api/v1/drills?wait=true", json={"unit": "330110"},
                                  headers=auth(hall.world.admin_token))
    assert resp.status == 200, await resp.text()
    page = await hall.console("admin")
    await page.hover(f'.tree .camera[data-camera="{camera}"] .camera-name')
    thumb = f'.tree .camera[data-camera="{camera}"] img.thumb'
    await page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete "
        "&& i.naturalWidth > 0; }", arg=thumb)
    size = await page.evaluate("s => { const i = document.querySelector(s); "
                               "return [i.naturalWidth, i.naturalHeight]; }", thumb)
    assert size == [160, 90]
    await page.mouse.move(1500, 850)  # away: the picture goes
    await page.wait_for_selector(thumb, state="detached")
    records = await hall.client.server.app[JOURNAL_KEY].records(RecordFilter(camera_id=camera))
    assert any(r["action"] == "snapshot" and (r["detail"] or {}).get("via") == "thumbnail"
               and r["user"] == "admin" for r in records), records
