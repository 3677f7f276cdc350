"""The CLI starts like a small tool: `--help` and the commands that talk HTTP load no
SQLAlchemy, no aiohttp, no aiortc, no PyAV (the timing is scripts/bench/cli_start.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "aiohttp", "aiortc", "av", "numpy", "onvif", "zeep", "camrelay.store",
         "camrelay.access", "camrelay.relay", "camrelay.web")

PROBE = """
import json, sys
prefixes = tuple(json.loads(sys.stdin.read()))
from camrelay.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] if not m.startswith("camrelay.") else ".".join(m.split(".")[:2])
                for m in sys.modules if m.startswith(prefixes)})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def loaded(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], input=json.dumps(HEAVY),
                          capture_output=True, text=True, timeout=60, check=False)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [
    ("--help",),
    ("camera", "list", "--help"),
    ("discover", "--help"),
    ("audit", "verify", "--help"),
    # a command that talks to a server (none listens on port 9: it fails with one line)
    ("camera", "list", "--url", "http://127.0.0.1:9", "--token", "crt_x"),
    ("sessions", "--url", "http://127.0.0.1:9", "--token", "crt_x"),
])
def test_cli_commands_that_talk_http_load_nothing_heavy(args: tuple[str, ...]) -> None:
    result = loaded(*args)
    assert result["heavy"] == [], result
    assert result["code"] in (0, 1), result


def test_store_commands_still_load_the_store(tmp_path: Path) -> None:
    # a backup of a data directory without a store: it fails with one line, after loading
    result = loaded("backup", str(tmp_path / "copy.db"), "--data-dir", str(tmp_path))
    assert result["code"] == 1
    assert "camrelay.store" in result["heavy"], result
