"""``camrelay unit …`` and ``camrelay camera …`` end to end against a live server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.catalog.conftest import Live, Run, run_cli

CANARY = "Cli-Canary-Pw-7731"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the CLI talks REST; the store tests cover both backends


async def cli(live: Live, *args: str, input: str | None = None,
              env: dict[str, str | None] | None = None) -> Run:
    run = await asyncio.to_thread(run_cli, args, input=input, env={**live.env, **(env or {})})
    assert "Traceback" not in run.text, run.text
    assert CANARY not in run.text
    return run


def one_line_error(run: Run) -> str:
    assert run.code == 1, run
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("camrelay: error: "), run.err
    return lines[0]


async def test_unit_commands(live: Live) -> None:
    run = await cli(live, "unit", "add", "330120", "--name", "萧山区交通运输局", "--level",
                    "county", "--parent", "330100", "--json")
    assert run.code == 0, run
    assert json.loads(run.out)["parent"] == "330100"
    assert "already exists" in one_line_error(await cli(
        live, "unit", "add", "330120", "--name", "x", "--level", "city", "--parent", "330000"))

    run = await cli(live, "unit", "list")
    assert run.code == 0 and "萧山区交通运输局" in run.out and "CODE" in run.out
    run = await cli(live, "unit", "list", "--json")
    assert [u["code"] for u in json.loads(run.out)] == ["330000", "330100", "330110", "330120"]
    run = await cli(live, "unit", "show", "330120", "--json")
    assert json.loads(run.out)["level"] == "county"
    run = await cli(live, "unit", "show", "330120")
    assert run.code == 0 and "萧山区交通运输局" in run.out

    run = await cli(live, "unit", "update", "330120", "--name", "萧山区交通局", "--parent",
                    "330000", "--level", "city", "--json")
    assert run.code == 0, run
    changed = json.loads(run.out)
    assert (changed["name"], changed["parent"], changed["level"]) == (
        "萧山区交通局", "330000", "city")

    # refused with children, then --cascade
    assert "sub-unit" in one_line_error(await cli(live, "unit", "remove", "330100"))
    run = await cli(live, "unit", "list", "--json")
    assert len(json.loads(run.out)) == 4
    run = await cli(live, "unit", "remove", "330100", "--cascade")
    assert run.code == 0 and "removed 2 unit(s) and 0 camera(s)" in run.out
    run = await cli(live, "unit", "remove", "330120")
    assert run.code == 0

    assert "does not exist" in one_line_error(await cli(live, "unit", "show", "330100"))
    assert "parent" in one_line_error(await cli(
        live, "unit", "add", "339999", "--name", "x", "--level", "city", "--parent", "nope"))
    run = await cli(live, "unit", "update", "330000")
    assert run.code == 2 and "nothing to change" in run.err


EVERY_FIELD = [
    "--external-id", "zj-hz-0100", "--name", "G60 杭金衢 K12+300", "--unit", "330100",
    "--maintenance-unit", "330110", "--contact-name", "王工", "--contact-phone",
    "0571-8888 0000", "--category", "expressway", "--location", "杭州市余杭区 G60",
    "--lat", "30.27", "--lon", "120.15", "--type", "ptz", "--vendor", "海康威视", "--model",
    "DS-2DE4425IW", "--status", "online", "--main-url",
    "rtsp://10.1.2.3:554/Streaming/Channels/101", "--sub-url",
    "rtsp://10.1.2.3:554/Streaming/Channels/102", "--onvif-url",
    "http://10.1.2.3/onvif/device_service", "--transport", "udp", "--username", "admin",
    "--tag", "g60", "--tag", "桥头", "--enabled", "--valid-from", "2024-01-01T00:00:00+08:00",
    "--valid-until", "2099-01-01T00:00:00Z",
]


async def test_camera_commands_with_every_field(live: Live) -> None:
    run = await cli(live, "camera", "add", *EVERY_FIELD, "--password-stdin", "--json",
                    input=CANARY + "\n")
    assert run.code == 0, run
    cam: dict[str, Any] = json.loads(run.out)
    expected = {
        "external_id": "zj-hz-0100", "name": "G60 杭金衢 K12+300", "unit": "330100",
        "maintenance_unit": "330110", "contact_name": "王工", "contact_phone": "0571-8888 0000",
        "category": "expressway", "location": "杭州市余杭区 G60", "latitude": 30.27,
        "longitude": 120.15, "camera_type": "ptz", "vendor": "海康威视", "model": "DS-2DE4425IW",
        "status": "online", "main_url": "rtsp://10.1.2.3:554/Streaming/Channels/101",
        "sub_url": "rtsp://10.1.2.3:554/Streaming/Channels/102",
        "onvif_url": "http://10.1.2.3/onvif/device_service", "transport": "udp",
        "username": "admin", "has_password": True, "tags": ["g60", "桥头"], "enabled": True,
        "active": True, "valid_from": "2023-12-31T16:00:00Z",
        "valid_until": "2099-01-01T00:00:00Z",
    }
    assert {k: cam[k] for k in expected} == expected
    cam_id = str(cam["id"])
    assert await live.world.catalog.stream_credentials(cam["id"]) == ("admin", CANARY)

    run = await cli(live, "camera", "show", cam_id, "--json")
    assert json.loads(run.out)["has_password"] is True and "password" not in json.loads(run.out)
    run = await cli(live, "camera", "show", cam_id)
    assert run.code == 0 and "海康威视" in run.out
    run = await cli(live, "camera", "list", "--json", "--unit", "330000", "--category",
                    "expressway", "--status", "online", "--search", "K12")
    page = json.loads(run.out)
    assert page["total"] == 1 and page["items"][0]["id"] == cam["id"]
    run = await cli(live, "camera", "list")
    assert run.code == 0 and "zj-hz-0100" in run.out and "EXTERNAL_ID" in run.out
    run = await cli(live, "camera", "list", "--json", "--category", "tunnel")
    assert json.loads(run.out)["total"] == 0

    # the password from the environment; a URL's user-info is split off and sealed
    run = await cli(live, "camera", "update", cam_id, "--main-url",
                    f"rtsp://root:{CANARY}x@10.1.2.9/live", "--disabled", "--json")
    assert run.code == 0, run
    cam = json.loads(run.out)
    assert (cam["main_url"], cam["username"], cam["enabled"], cam["active"]) == (
        "rtsp://10.1.2.9/live", "root", False, False)
    assert await live.world.catalog.stream_credentials(cam["id"]) == ("root", CANARY + "x")
    assert "camrelay: warning: the password in --main-url is visible to ps" in run.err
    run = await cli(live, "camera", "update", cam_id, "--name", "改名", "--json",
                    env={"CAMRELAY_CAMERA_PASSWORD": CANARY + "y"})
    assert run.code == 0 and json.loads(run.out)["name"] == "改名"
    assert await live.world.catalog.stream_credentials(cam["id"]) == ("root", CANARY + "y")

    # a unit with a camera is not removed silently
    error = one_line_error(await cli(live, "unit", "remove", "330100"))
    assert "1 camera(s)" in error

    run = await cli(live, "camera", "remove", cam_id)
    assert run.code == 0 and f"removed camera {cam_id}" in run.out
    assert "does not exist" in one_line_error(await cli(live, "camera", "show", cam_id))


async def test_camera_bad_input_is_one_line(live: Live) -> None:
    base = ["camera", "add", "--name", "x", "--unit", "330100", "--category", "expressway"]
    for extra, word in [
        (["--lat", "91", "--lon", "120"], "latitude"),
        (["--unit", "999999"], "unit"),
        (["--category", "spaceport"], "category"),
        (["--main-url", "http://10.0.0.1/x"], "main_url"),
        (["--main-url", "rtsp://"], "main_url"),
        (["--valid-from", "yesterday"], "valid_from"),
        (["--name", "x" * 201], "name"),
        (["--type", "periscope"], "camera_type"),
    ]:
        error = one_line_error(await cli(live, *base, *extra))
        assert word in error, (extra, error)
    ok = await cli(live, *base, "--external-id", "dup-1")
    assert ok.code == 0, ok
    assert "already exists" in one_line_error(await cli(live, *base, "--external-id", "dup-1"))
    assert (await cli(live, "camera", "list", "--json")).out.count('"external_id"') == 1


async def test_usage_errors_exit_2(live: Live) -> None:
    for args, env in [
        (["camera", "add", "--name", "x"], {}),  # --unit and --category missing
        (["camera", "add", "--bogus"], {}),
        (["camera", "show", "abc"], {}),
        (["camera", "list", "--status", "lost"], {}),
        (["unit", "list"], {"CAMRELAY_TOKEN": None}),
        (["nonsense"], {}),
        (["camera", "add", "--name", "x", "--unit", "330100", "--category", "expressway",
          "--password-stdin"], {}),  # nothing on stdin
    ]:
        run = await cli(live, *args, env=env, input="")
        assert run.code == 2, (args, run)
        assert run.err.strip(), args


async def test_wrong_token_and_no_server(live: Live) -> None:
    error = one_line_error(await cli(live, "unit", "list", env={"CAMRELAY_TOKEN": "crt_nope"}))
    assert "bearer token" in error
    from tests.servers import free_port

    error = one_line_error(await cli(
        live, "unit", "list", env={"CAMRELAY_URL": f"http://127.0.0.1:{free_port()}"}))
    assert "cannot reach the camrelay server" in error

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def not_camrelay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n"
                     b"Connection: close\r\n\r\n<html>")
        await writer.drain()
        writer.close()

    for handler, message in [(hang_up, "the connection to the camrelay server"),
                             (not_camrelay, "did not answer with JSON")]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            error = one_line_error(await cli(
                live, "unit", "list", env={"CAMRELAY_URL": f"http://127.0.0.1:{port}"}))
        assert message in error, error
