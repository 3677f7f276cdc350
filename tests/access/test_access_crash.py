"""kill -9 during views loses no record: the next start closes them at their last heartbeat."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from camrelay.access.accounts import digest
from camrelay.access.journal import RECOVERED, RecordFilter
from camrelay.app import create_app
from camrelay.fields import utcnow
from camrelay.settings import Settings
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import Folks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["sqlite"])  # one backend is enough for a process crash
async def test_kill_9_loses_no_record(folks: Folks, settings: Settings, backend: str) -> None:
    wanted = [{"digest": digest(folks.tokens[who]), "user_id": folks.user_ids[who],
               "camera_id": folks.cameras[cam]}
              for who, cam in (("county_op", "county"), ("prov_op", "other"),
                               ("city_view", "city"))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    env.update(CAMRELAY_DATA_DIR=str(settings.data_dir), PYTHONPATH=str(ROOT))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.access.crash_child", json.dumps(wanted), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    view_ids = []
    try:
        async with asyncio.timeout(60):
            while (line := (await child.stdout.readline()).decode().strip()) != "ready":
                if not line:
                    raise AssertionError("child died: " + (await child.stderr.read()).decode()
                                         if child.stderr else "")
                view_ids.append(line)
        await asyncio.sleep(1.0)  # let it heartbeat a few times (0.2 s apart) while "live"
    finally:
        killed_at = utcnow()
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL and len(view_ids) == 3

    app = create_app(settings, folks.world.store)  # the next start, same data directory
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        journal = client.app[JOURNAL_KEY]
        records: list[dict[str, Any]] = await journal.records(RecordFilter(kind="view"))
        assert sorted(r["view_id"] for r in records) == sorted(view_ids)
        for record in records:
            assert record["close_reason"] == RECOVERED
            # closed at its last heartbeat: after it opened, before the kill (not at restart)
            end = datetime.fromisoformat(record["end"])
            assert end <= killed_at and record["duration_s"] > 0.1, record
            assert record["purpose"] == "video wall" and record["client_address"] == "127.0.0.7"
        assert (await journal.verify()).ok
