"""The access commands as a technician runs them: subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from camrelay.fields import utcnow
from camrelay.web.keys import JOURNAL_KEY
from tests.access.conftest import Folks

CAMRELAY = str(Path(sys.executable).with_name("camrelay"))


async def cli(client: TestClient[Any, Any], token: str, *args: str,
              stdin: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMRELAY_")}
    env.update(CAMRELAY_URL=str(client.make_url("")).rstrip("/"), CAMRELAY_TOKEN=token)
    proc = await asyncio.create_subprocess_exec(
        CAMRELAY, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(None if stdin is None
                                                      else stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI speaks HTTP; stores: API tests
async def test_access_commands_end_to_end(client: TestClient[Any, Any], folks: Folks,
                                          backend: str, tmp_path: Path) -> None:
    admin = folks.world.admin_token
    code, out, err = await cli(client, admin, "user", "add", "wall-01", "--unit", "330110",
                               "--role", "viewer", "--service")
    assert code == 0, err
    code, out, err = await cli(client, admin, "user", "add", "zhang.san", "--unit", "330110",
                               "--role", "operator", "--password-stdin",
                               stdin="a long enough password\n")
    assert code == 0, err
    code, out, _ = await cli(client, admin, "user", "list", "--json")
    assert {"wall-01", "zhang.san"} <= {u["username"] for u in json.loads(out)}
    code, out, err = await cli(client, admin, "token", "create", "--user", "wall-01",
                               "--expires", "30d")
    assert code == 0 and out.strip().startswith("crt_") and "shown once" in err
    wall_token = out.strip()
    code, out, _ = await cli(client, admin, "token", "list", "--user", "wall-01", "--json")
    (wall_info,) = json.loads(out)
    assert "token" not in wall_info and wall_info["expires_at"]

    # a grant: request, self-approval refused, approval, listing
    until = (utcnow() + timedelta(hours=4)).isoformat()
    code, out, err = await cli(
        client, folks.tokens["county_op"], "grant", "request", "--to-user", "county_op",
        "--camera", str(folks.cameras["other"]), "--actions", "live,snapshot",
        "--purpose", "跨区事故协查", "--until", until, "--json")
    assert code == 0, err
    grant_id = json.loads(out)["id"]
    code, _, err = await cli(client, folks.tokens["county_op"], "grant", "approve",
                             str(grant_id))
    assert code == 1 and "own request" in err and "Traceback" not in err
    code, out, err = await cli(client, folks.tokens["approver"], "grant", "approve",
                               str(grant_id), "--comment", "同意")
    assert code == 0 and "active" in out, err
    code, out, _ = await cli(client, folks.tokens["county_op"], "grant", "list", "--status",
                             "active", "--json")
    assert [g["id"] for g in json.loads(out)] == [grant_id]
    code, out, _ = await cli(client, folks.tokens["county_op"], "grant", "list")
    assert "跨区事故协查" in out and "active" in out

    # emergency: radius, announced, confirmed
    code, out, err = await cli(
        client, folks.tokens["county_op"], "emergency", "open", "--reason", "隧道火灾",
        "--incident", "INC-7", "--near", "29.875,121.555", "--radius-km", "3", "--json")
    assert code == 0, err
    em_id = json.loads(out)["id"]
    code, out, _ = await cli(client, folks.tokens["approver"], "emergency", "notifications")
    assert "INC-7" in out
    code, out, err = await cli(client, folks.tokens["approver"], "emergency", "confirm",
                               str(em_id))
    assert code == 0 and "confirmed" in out, err
    code, _, err = await cli(client, folks.tokens["city_view"], "emergency", "open",
                             "--reason", "x", "--incident", "y", "--camera", "1")
    assert code == 1 and "viewer" in err

    # revoke, disable
    code, _, err = await cli(client, folks.tokens["approver"], "grant", "revoke",
                             str(grant_id), "--reason", "事故处置完毕")
    assert code == 0, err
    code, _, err = await cli(client, admin, "token", "revoke", str(wall_info["id"]))
    assert code == 0, err
    code, _, err = await cli(client, wall_token, "user", "list")
    assert code == 1 and "revoked" in err
    code, out, err = await cli(client, admin, "user", "disable", "zhang.san")
    assert code == 0, err

    # the log: list, export, verify
    code, out, _ = await cli(client, folks.tokens["prov_auditor"], "audit", "list", "--kind",
                             "admin", "--json")
    actions = [r["action"] for r in json.loads(out)]
    for expected in ("user.add", "token.create", "grant.request", "grant.approve",
                     "emergency.open", "emergency.confirm", "grant.revoke", "token.revoke",
                     "user.update"):
        assert expected in actions, expected
    target = tmp_path / "audit.csv"
    code, _, err = await cli(client, folks.tokens["prov_auditor"], "audit", "export",
                             "--kind", "admin", "-o", str(target))
    assert code == 0, err
    assert target.read_text(encoding="utf-8").splitlines()[0].startswith("id,kind,action,")
    code, out, err = await cli(client, folks.tokens["prov_auditor"], "audit", "verify")
    assert code == 0 and out.startswith("ok:"), (out, err)
    code, _, err = await cli(client, folks.tokens["county_op"], "audit", "verify")
    assert code == 1 and "auditors" in err

    # an attacker with database access edits an event behind camrelay's back
    journal = client.app[JOURNAL_KEY]
    async with journal.engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER journal_append_only_update"))
        await conn.execute(text("UPDATE journal SET username = 'someone' WHERE seq = 2"))
    code, out, err = await cli(client, folks.tokens["prov_auditor"], "audit", "verify")
    assert code == 1 and "event 2:" in out and "fails verification" in err


@pytest.mark.parametrize("backend", ["sqlite"])  # no store involved
async def test_usage_errors_exit_2(client: TestClient[Any, Any], folks: Folks,
                                   backend: str) -> None:
    token = folks.tokens["county_op"]
    for args in (["grant", "request", "--purpose", "x", "--until", "2030-01-01T00:00:00Z"],
                 ["grant", "request", "--to-unit", "330110", "--purpose", "x", "--until",
                  "2030-01-01T00:00:00"],
                 ["emergency", "open", "--reason", "r", "--incident", "i", "--near", "1"],
                 ["token", "create", "--user", "x", "--expires", "soon"]):
        code, _, err = await cli(client, token, *args)
        assert code == 2, (args, err)


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI speaks HTTP; stores: API tests
async def test_user_set_password(client: TestClient[Any, Any], folks: Folks,
                                 backend: str) -> None:
    good, new, newer = "correct horse battery", "a new and longer one", "and yet another one"

    async def login(user: str, password: str) -> int:
        r = await client.post("/api/v1/auth/login",
                              json={"username": user, "password": password})
        return r.status

    # your own: the current password first, then the new one
    own = folks.tokens["county_op"]
    code, out, err = await cli(client, own, "user", "set-password", "county_op",
                               "--password-stdin", stdin=f"{good}\n{new}\n")
    assert code == 0, err
    assert out.strip() == "new password set for county_op; other login sessions ended: 0"
    assert await login("county_op", new) == 200
    code, _, err = await cli(client, own, "user", "set-password", "county_op",
                             "--password-stdin", stdin=f"wrong one\n{newer}\n")
    assert code == 1 and "current password is wrong" in err and "Traceback" not in err
    # an administrator of the subtree: the new password only
    code, out, err = await cli(client, folks.tokens["city_admin"], "user", "set-password",
                               "county_op", "--password-stdin", "--json", stdin=f"{newer}\n")
    assert code == 0, err
    assert json.loads(out)["sessions_ended"] == 1  # the sign-in above
    assert await login("county_op", newer) == 200
    code, _, err = await cli(client, folks.tokens["city_admin"], "user", "set-password",
                             "prov_op", "--password-stdin", stdin=f"{newer}\n")
    assert code == 1 and "outside your subtree" in err
    code, _, err = await cli(client, folks.tokens["city_admin"], "user", "set-password",
                             "county_op", "--password-stdin", stdin="short\n")
    assert code == 1 and "8" in err
    code, _, err = await cli(client, "", "user", "set-password", "county_op")
    assert code == 2 and "--local" in err
    for secret in (good, new, newer):
        assert secret not in out + err


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_token_expires_exactly_when_asked(client: TestClient[Any, Any], folks: Folks,
                                                  backend: str) -> None:
    """``--expires`` with a time is that time (it was rounded to whole hours), over the
    API's exact ``expires_at``; ``expires_in_hours`` keeps working."""
    admin = folks.world.admin_token
    asked = (utcnow() + timedelta(seconds=60)).astimezone(timezone(timedelta(hours=8)))
    code, out, err = await cli(client, admin, "token", "create", "--user", "county_op",
                               "--expires", asked.isoformat(), "--json")
    assert code == 0, err
    got = datetime.fromisoformat(json.loads(out)["expires_at"])
    assert abs(got - asked) < timedelta(seconds=1), (got, asked)
    token = json.loads(out)["token"]
    info = await folks.world.accounts.authenticate(token)
    assert info.user.username == "county_op"

    h = folks.h("admin")
    at = (utcnow() + timedelta(minutes=5)).isoformat()
    r = await client.post("/api/v1/tokens", headers=h, json={"user": "county_op",
                                                             "expires_at": at})
    assert r.status == 201
    stored = datetime.fromisoformat((await r.json())["expires_at"])
    assert stored == datetime.fromisoformat(at)
    r = await client.post("/api/v1/tokens", headers=h, json={"user": "county_op",
                                                             "expires_in_hours": 2})
    stored = datetime.fromisoformat((await r.json())["expires_at"])
    assert r.status == 201 and abs(stored - utcnow() - timedelta(hours=2)) < timedelta(
        minutes=1)
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    for body in ({"expires_at": at, "expires_in_hours": 1}, {"expires_at": past},
                 {"expires_at": "2030-01-01T00:00:00"},
                 {"expires_at": (utcnow() + timedelta(days=366 * 101)).isoformat()}):
        r = await client.post("/api/v1/tokens", headers=h, json={"user": "county_op", **body})
        problem = await r.json()
        assert r.status == 422 and problem["field"] == "expires_at", (body, problem)
    code, _, err = await cli(client, admin, "token", "create", "--user", "county_op",
                             "--expires", past)
    assert code == 2 and "passed" in err
