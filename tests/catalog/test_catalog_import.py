"""``camrelay catalog import|export``: round trips, encodings, bad rows, idempotent re-imports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from camrelay.catalog.service import CameraFilter
from tests.catalog.conftest import Live, Run, run_cli

CANARY = "Import-Canary-Pw-5521"
HEADER = ["external_id", "name", "unit", "maintenance_unit", "contact_name", "contact_phone",
          "category", "location", "latitude", "longitude", "camera_type", "vendor", "model",
          "status", "main_url", "sub_url", "onvif_url", "transport", "username", "password",
          "tags", "enabled", "valid_from", "valid_until"]
ROWS = [
    ["zj-hz-0001", "G60 杭金衢高速 K12+300", "330100", "330110", "王工", "0571-8888 0000",
     "expressway", "杭州市余杭区 G60 K12+300", "30.27", "120.15", "ptz", "海康威视",
     "DS-2DE4425IW", "online", f"rtsp://admin:{CANARY}@10.1.2.3:554/Streaming/Channels/101",
     "rtsp://10.1.2.3:554/Streaming/Channels/102", "http://10.1.2.3/onvif/device_service",
     "tcp", "", "", "g60;桥头", "true", "", ""],
    ["zj-hz-0002", "钱塘江大桥 北岸（喆堃镕）", "330100", "", "", "", "bridge", "钱塘江大桥北岸",
     "30.2", "120.14", "fixed", "大华", "", "offline", "rtsp://10.1.2.4/live", "", "", "udp",
     "operator", CANARY, "", "true", "2024-06-01T00:00:00+08:00", "2099-10-08T00:00:00Z"],
    ["zj-yh-0003", "余杭 临平隧道 入口", "330110", "", "", "", "tunnel", "", "", "", "dome",
     "", "", "fault", "", "", "", "tcp", "", "", "", "false", "", ""],
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


def csv_text(rows: list[list[str]], header: list[str] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


async def cli(live: Live, *args: str) -> Run:
    run = await asyncio.to_thread(run_cli, args, env=live.env)
    assert "Traceback" not in run.text
    assert CANARY not in run.text
    return run


async def count(live: Live) -> int:
    return (await live.world.catalog.list_cameras(CameraFilter()))[1]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
async def test_csv_import_in_every_encoding_and_reimport_changes_nothing(
        live: Live, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / f"cameras-{encoding}.csv"
    path.write_bytes(csv_text(ROWS).encode(encoding))
    run = await cli(live, "catalog", "import", str(path))
    assert run.code == 0, run
    assert "imported: 3 added, 0 updated, 0 unchanged, 0 skipped" in run.out
    cameras, _ = await live.world.catalog.list_cameras(CameraFilter())
    by_ext = {c.external_id: c for c in cameras}
    assert by_ext["zj-hz-0002"].name == "钱塘江大桥 北岸（喆堃镕）"
    assert by_ext["zj-hz-0001"].tags == ("g60", "桥头")
    assert await live.world.catalog.stream_credentials(by_ext["zj-hz-0001"].id) == (
        "admin", CANARY)
    assert await live.world.catalog.stream_credentials(by_ext["zj-hz-0002"].id) == (
        "operator", CANARY)
    updated = {c.external_id: c.updated_at for c in cameras}

    run = await cli(live, "catalog", "import", str(path), "--json")
    assert run.code == 0
    assert json.loads(run.out) == {"imported": True, "added": 0, "updated": 0, "unchanged": 3,
                                   "errors": []}
    cameras, _ = await live.world.catalog.list_cameras(CameraFilter())
    assert {c.external_id: c.updated_at for c in cameras} == updated

    # one changed cell updates exactly that camera
    changed = [list(r) for r in ROWS]
    changed[2][1] = "余杭 临平隧道 出口"
    path.write_bytes(csv_text(changed).encode(encoding))
    run = await cli(live, "catalog", "import", str(path))
    assert "imported: 0 added, 1 updated, 2 unchanged" in run.out


async def test_export_import_round_trips_csv_and_json(live: Live, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_text(ROWS).encode("gbk"))
    assert (await cli(live, "catalog", "import", str(source))).code == 0
    before = {c.external_id: c for c in (await live.world.catalog.list_cameras(
        CameraFilter()))[0]}

    for fmt in ("csv", "json"):
        out = tmp_path / f"export.{fmt}"
        run = await cli(live, "catalog", "export", "--format", fmt, "-o", str(out))
        assert run.code == 0, run
        data = out.read_bytes()
        assert CANARY.encode() not in data
        text = data.decode("utf-8")
        assert "钱塘江大桥 北岸（喆堃镕）" in text
        if fmt == "json":
            exported = {r["external_id"]: r for r in json.loads(text)}
        else:
            exported = {r["external_id"]: r for r in csv.DictReader(io.StringIO(text))}
        assert exported["zj-hz-0001"]["main_url"] == (
            "rtsp://10.1.2.3:554/Streaming/Channels/101")
        assert exported["zj-hz-0001"]["tags"] == "g60;桥头"
        assert "password" not in exported["zj-hz-0001"]

        run = await cli(live, "catalog", "import", str(out), "--json")
        assert run.code == 0, run
        assert json.loads(run.out)["unchanged"] == 3, run.out
        after = {c.external_id: c for c in (await live.world.catalog.list_cameras(
            CameraFilter()))[0]}
        assert after == before  # passwords kept: an export never carries them

        # the export loads into an empty catalogue and gives the same cameras
        for cam in after.values():
            await live.world.catalog.remove_camera(cam.id)
        run = await cli(live, "catalog", "import", str(out))
        assert "imported: 3 added" in run.out, run
        fresh = {c.external_id: c for c in (await live.world.catalog.list_cameras(
            CameraFilter()))[0]}
        skip = {"id", "created_at", "updated_at", "has_password"}
        for ext, cam in before.items():
            for name in cam.__slots__:
                if name not in skip:
                    assert getattr(fresh[ext], name) == getattr(cam, name), (ext, name)
        # the password is not exported: re-importing into the same store keeps it,
        # a fresh store gets none
        assert not fresh["zj-hz-0002"].has_password
        for cam in fresh.values():
            await live.world.catalog.remove_camera(cam.id)
        assert (await cli(live, "catalog", "import", str(source))).code == 0
        before = {c.external_id: c for c in (await live.world.catalog.list_cameras(
            CameraFilter()))[0]}


async def test_every_bad_row_is_reported_and_nothing_is_imported(live: Live,
                                                                 tmp_path: Path) -> None:
    bad = [list(r) for r in ROWS]
    bad.append(["zj-bad-4", "经纬度越界", "330100", "", "", "", "expressway", "", "95", "120",
                "", "", "", "", "", "", "", "", "", "", "", "", "", ""])
    bad.append(["zj-bad-5", "未知单位", "339999", "", "", "", "expressway"] + [""] * 17)
    bad.append(["zj-hz-0001", "重复编号", "330100", "", "", "", "expressway"] + [""] * 17)
    bad.append(["zj-bad-7", "未知类别", "330100", "", "", "", "spaceport"] + [""] * 17)
    bad.append(["zj-bad-8", "坏地址", "330100", "", "", "", "expressway", "", "", "", "", "", "",
                "", "http://10.0.0.1/x"] + [""] * 9)
    bad.append(["zj-bad-9", "x" * 201, "330100", "", "", "", "expressway"] + [""] * 17)
    bad.append(["zj-bad-10", "未知状态", "330100", "", "", "", "expressway"] + [""] * 6
               + ["lost"] + [""] * 10)
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_text(bad).encode("gb18030"))
    run = await cli(live, "catalog", "import", str(path))
    assert run.code == 1
    expected = {5: "latitude", 6: "unit", 7: "external_id", 8: "category", 9: "main_url",
                10: "name", 11: "status"}
    for line, field in expected.items():
        assert f"{path}:{line} [{field}]: " in run.err, (line, run.err)
    assert run.err.strip().splitlines()[-1] == (
        "camrelay: error: 7 invalid row(s); nothing was imported (fix them, or use "
        "--skip-invalid)")
    assert await count(live) == 0

    run = await cli(live, "catalog", "import", str(path), "--json")
    report = json.loads(run.out)
    assert run.code == 1 and report["imported"] is False
    assert [(e["line"], e["field"]) for e in report["errors"]] == list(expected.items())

    run = await cli(live, "catalog", "import", str(path), "--skip-invalid")
    assert run.code == 0, run
    assert "imported: 3 added, 0 updated, 0 unchanged, 7 skipped" in run.out
    assert await count(live) == 3


async def test_file_level_errors_are_clear(live: Live, tmp_path: Path) -> None:
    cases: list[tuple[bytes, list[str], str]] = [
        (csv_text(ROWS, HEADER).replace("category", "kind", 1).encode(), [],
         "lacks the column(s) category"),
        (b"external_id,name,unit,category,colour\n", [], "unknown CSV column(s) colour"),
        (b"", [], "the CSV file is empty"),
        (csv_text(ROWS).encode("utf-8") + b"\xff\xfe\x80", [],
         "neither UTF-8 nor GBK/GB18030; give its encoding with --encoding"),
        (csv_text(ROWS).encode("gbk"), ["--encoding", "utf-8"],
         "the file is not valid utf-8"),
        (csv_text(ROWS).encode(), ["--encoding", "klingon"], "unknown encoding 'klingon'"),
        (b'[{"external_id": "x",', [], "the file is not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, [], "nested more than 64 levels deep"),
        (b'[{"external_id": "x", "name": "\\ud800", "unit": "330100", "category": "bridge"}]',
         [], "0.name holds a lone UTF-16 surrogate"),
        (b'[{"external_id": "x", "latitude": ' + b"3" * 5000 + b"}]", [],
         "a number has more than 4300 digits"),
        (b'[{"external_id": "x", "latitude": NaN}]', [], "NaN is not a JSON value"),
        (b'{"cameras": 3}', [], "a JSON catalogue is a list of camera objects"),
        (csv_text([ROWS[0] + ["extra"]]).encode(), [], "25 cells, the header has 24"),
    ]
    for data, extra, message in cases:
        path = tmp_path / "file.csv"
        path.write_bytes(data)
        run = await cli(live, "catalog", "import", str(path), *extra)
        assert run.code == 1, (message, run)
        assert message in run.err, (message, run.err)
        assert len(run.err.strip().splitlines()) <= 2, run.err
    assert await count(live) == 0


async def test_json_import_with_chinese_text(live: Live, tmp_path: Path) -> None:
    items = [dict(zip(HEADER, r)) for r in ROWS]
    items[0]["latitude"] = 30.27  # JSON numbers as well as strings
    items[0]["tags"] = ["g60", "桥头"]
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"cameras": items}, ensure_ascii=False), encoding="utf-8-sig")
    run = await cli(live, "catalog", "import", str(path))
    assert run.code == 0 and "3 added" in run.out, run
    run = await cli(live, "catalog", "import", str(path))
    assert "0 added, 0 updated, 3 unchanged" in run.out, run
