"""Passwords: Argon2 runs in worker threads, so sign-ins and new accounts never stall the
event loop that carries live video."""

from __future__ import annotations

import asyncio
import time

import pytest
from argon2 import PasswordHasher

from camrelay.access.accounts import Role
from camrelay.errors import AuthenticationRequired
from tests.conftest import World

PASSWORD = "correct horse battery"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_hashing_and_verifying_leave_the_event_loop_running(world: World) -> None:
    accounts = world.accounts
    await accounts.add_user("signer", unit_code="330000", role=Role.OPERATOR, password=PASSWORD)
    started = time.perf_counter()
    PasswordHasher().hash(PASSWORD)  # what one hash costs on this machine now
    one_hash = time.perf_counter() - started

    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    async def wrong(username: str) -> None:
        with pytest.raises(AuthenticationRequired):
            await accounts.verify_password(username, "not the password")

    ticker = asyncio.create_task(tick())
    right = await asyncio.gather(
        accounts.verify_password("signer", PASSWORD), wrong("signer"), wrong("nobody"),
        accounts.add_user("newcomer", unit_code="330000", role=Role.VIEWER, password=PASSWORD))
    done.set()
    await ticker
    assert right[0].username == "signer"
    assert (await accounts.verify_password("newcomer", PASSWORD)).username == "newcomer"
    # four Argon2 runs took place; the loop never waited for one of them
    assert max(gaps) < one_hash / 2, (max(gaps), one_hash)
