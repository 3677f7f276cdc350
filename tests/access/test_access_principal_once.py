"""A view's request reads the caller's token and user from the store once.

The middleware resolves the bearer token to a principal in one statement (the token
joined with its user); the gate checks that principal instead of reading the token and
user a second time (a wall's sixteen offers at once paid for three reads each).  Counted
with an event listener on the real SQLite engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event

from camrelay.access.journal import RecordFilter
from camrelay.errors import AuthenticationRequired
from camrelay.store.store import Store
from tests.access.conftest import Folks, gate, journal
from tests.conftest import World


@pytest.fixture
def backend() -> str:
    return "sqlite"


class Reads:
    """The SELECTs the store runs, by the table they read first."""

    def __init__(self, store: Store) -> None:
        self.statements: list[str] = []
        self._engine = store.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def of(self, table: str) -> int:
        pattern = re.compile(rf"^\s*SELECT\b.*\bFROM {table}\b", re.DOTALL | re.IGNORECASE)
        return sum(1 for s in self.statements if pattern.search(s))

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def reads(world: World) -> Iterator[Reads]:
    counter = Reads(world.store)
    yield counter
    counter.close()


async def test_whep_offer_reads_token_and_user_once(
        client: TestClient[Any, Any], world: World, folks: Folks, reads: Reads) -> None:
    camera = folks.cameras["city"]
    # the gate opens (and journals) the view before the content type is checked: a 415
    # runs authentication and the whole gate, and no media
    resp = await client.post(f"/whep/{camera}?stream=sub", data=b"v=0",
                             headers={**folks.h("city_view"), "Content-Type": "text/plain"})
    assert resp.status == 415, await resp.text()
    # the middleware reads the token with its user in one statement; the gate reads
    # neither again
    assert reads.of("tokens") == 1, reads.statements
    assert reads.of("users") == 0, reads.statements
    assert any(re.search(r"FROM tokens JOIN users", s) for s in reads.statements)
    rows = await journal(client).records(RecordFilter(kind="view"))
    assert [(r["user"], r["camera_id"], r["open"]) for r in rows] == \
        [("city_view", camera, False)]  # journalled, then closed as refused (415)


async def test_gate_without_principal_still_reads_and_refuses_revoked_token(
        client: TestClient[Any, Any], world: World, folks: Folks) -> None:
    # a request that carries no principal (another caller of the gate) is checked
    # against the store: a revoked token is refused and the refusal journalled
    principal = await world.accounts.authenticate(folks.tokens["city_view"])
    await world.accounts.revoke_token(principal.token_id)
    with pytest.raises(AuthenticationRequired, match="revoked"):
        await gate(client).open_view(folks.request("city_view", "city"))
    denied = await journal(client).records(RecordFilter(kind="denied"))
    assert [r["reason"] for r in denied] == ["the bearer token has been revoked"]
