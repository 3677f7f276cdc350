"""``camrelay alarm list|ack`` against a live server."""

from __future__ import annotations

import asyncio
import json

import pytest

from camrelay.health.alarms import Alarms
from camrelay.health.history import Verdict
from tests.catalog.conftest import Live, Run, live, run_cli  # noqa: F401  (fixture)


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def cli(live: Live, *args: str) -> Run:  # noqa: F811
    run = await asyncio.to_thread(run_cli, args, env=live.env)
    assert "Traceback" not in run.text, run.text
    return run


async def test_list_and_ack(live: Live) -> None:  # noqa: F811
    world = live.world
    camera = await world.catalog.add_camera({
        "external_id": "road-3", "name": "Road 3", "unit": "330110", "category": "bridge"})
    [(_, alarm)] = await Alarms(world.store).observe(camera.id, Verdict("fault", "auth"))
    run = await cli(live, "alarm", "list", "--unit", "330110", "--active", "--json")
    assert run.code == 0, run
    [row] = json.loads(run.out)
    assert (row["id"], row["kind"], row["ack"]) == (alarm.id, "fault.auth", None)
    run = await cli(live, "alarm", "list")
    assert run.code == 0 and "fault.auth" in run.out and "KIND" in run.out
    run = await cli(live, "alarm", "ack", str(alarm.id), "--comment", "password reset asked")
    assert run.code == 0 and "password reset asked" in run.out, run
    run = await cli(live, "alarm", "ack", str(alarm.id), "--comment", "again")
    assert run.code == 1 and run.err.startswith("camrelay: error: ")
    assert len(run.err.strip().splitlines()) == 1
    run = await cli(live, "alarm", "ack", "999999", "--comment", "x")
    assert run.code == 1 and "does not exist" in run.err
    run = await cli(live, "alarm", "ack", str(alarm.id))
    assert run.code == 2  # --comment is required
    run = await cli(live, "alarm", "list", "--unit", "no-such-unit")
    assert run.code == 1
