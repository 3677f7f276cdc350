"""Concurrency limits on one node without Redis ([limits], counted in the process): the
real app's gate and WHEP endpoint, the journal on SQLite."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from camrelay.access.journal import RecordFilter
from camrelay.errors import TooManyRequests
from camrelay.settings import LimitSettings, Settings
from tests.access.conftest import Folks, journal, open_view
from tests.access.test_access_emergency import open_emergency

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, limits=LimitSettings(per_unit=2, units={"330100": 1}))


async def test_per_unit_limit_refuses_the_third_view_and_admits_after_one_ends(
        client: TestClient[Any, Any], folks: Folks) -> None:
    first = await open_view(client, folks.request("county_op", "county"))
    second = await open_view(client, folks.request("county_op", "county"))
    with pytest.raises(TooManyRequests) as refused:
        await open_view(client, folks.request("county_op", "county"))
    assert refused.value.extra["limit"] == "per_unit" and refused.value.extra["allowed"] == 2
    # snapshots and PTZ take no seat
    snap = await open_view(client, folks.request("county_op", "county", "snapshot"))
    await snap.close()
    await first.close()
    third = await open_view(client, folks.request("county_op", "county"))
    denied = await journal(client).records(RecordFilter(kind="denied"), limit=10)
    assert [r["reason"] for r in denied] == [(
        "unit 330110 has 2 live view(s) open, its limit (limits.per_unit); try again when "
        "one ends")]
    await second.close()
    await third.close()


async def test_a_whep_offer_over_the_unit_override_gets_429_with_the_problem(
        client: TestClient[Any, Any], folks: Folks) -> None:
    held = await open_view(client, folks.request("city_op", "city"))  # 330100: limit 1
    try:
        r = await client.post(f"/whep/{folks.cameras['city']}", data="v=0\r\n",
                              headers={**folks.h("city_op"), "Content-Type": "application/sdp"})
        assert r.status == 429
        assert r.headers["Retry-After"] == "5"
        problem = await r.json(content_type=None)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert problem["limit"] == "per_unit" and problem["unit"] == "330100"
        assert problem["allowed"] == 1 and problem["reason"] == "concurrency_limit"
    finally:
        await held.close()


async def test_an_emergency_view_goes_over_the_limit_counted_and_journalled(
        client: TestClient[Any, Any], folks: Folks) -> None:
    views = [await open_view(client, folks.request("county_op", "county")) for _ in range(2)]
    await open_emergency(client, folks, "county_op", cameras=[folks.cameras["other"]])
    emergency = await open_view(client, folks.request("county_op", "other"))
    assert emergency.emergency and emergency.seat is not None
    assert emergency.seat.over == "per_unit"
    with pytest.raises(TooManyRequests):  # counted: the unit now holds three seats
        await open_view(client, folks.request("county_op", "county"))
    await views[0].close()
    with pytest.raises(TooManyRequests):  # two left: still full
        await open_view(client, folks.request("county_op", "county"))
    records = await journal(client).records(RecordFilter(kind="view", camera_id=folks.cameras[
        "other"]), limit=10)
    (record,) = records
    assert record["basis"] == "emergency" and record["detail"] == {"via": "test",
                                                              "over_limit": "per_unit"}
    for view in (views[1], emergency):
        await view.close()
    again = await open_view(client, folks.request("county_op", "county"))
    await again.close()
