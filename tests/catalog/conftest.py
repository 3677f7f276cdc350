"""Fixtures for the catalogue tests: the CLI run in-process against a live server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from camrelay.cli import main
from tests.conftest import World


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(args: Sequence[str], *, input: str | None = None,
            env: Mapping[str, str | None] | None = None) -> Run:
    """``camrelay ARGS`` through ``camrelay.cli.main`` (its real exit codes and messages)."""
    runner = CliRunner()
    with runner.isolation(input=input, env=dict(env or {})) as (out, err, _):
        code = main(list(args))
    return Run(code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8"))


@dataclass(frozen=True)
class Live:
    """A live server (aiohttp TestServer on 127.0.0.1) and the environment the CLI needs."""

    url: str
    world: World

    @property
    def env(self) -> dict[str, str | None]:
        return {"CAMRELAY_URL": self.url, "CAMRELAY_TOKEN": self.world.admin_token,
                "CAMRELAY_CAMERA_PASSWORD": None, "CAMRELAY_PASSWORD": None}


@pytest.fixture
def live(client: TestClient[Any, Any], world: World) -> Live:
    return Live(str(client.server.make_url("")).rstrip("/"), world)
