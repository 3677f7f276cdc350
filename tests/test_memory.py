"""glibc's malloc in the server: two arenas, and memory handed back after a burst."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from camrelay import memory
from camrelay.store import Store

CHILD = """
import ctypes, sys, threading
from camrelay.memory import limit_malloc_arenas
print(limit_malloc_arenas() if sys.argv[1] == "limit" else "off", flush=True)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
held = []
barrier = threading.Barrier(8)
def work():
    barrier.wait()  # all eight threads allocate at once, so each would want an arena
    held.append(libc.malloc(4096))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def arenas(mode: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         env=environ, timeout=60, check=True)
    return out.stdout.strip(), out.stderr.count("Arena ")


def test_the_server_keeps_two_arenas() -> None:
    said, limited = arenas("limit")
    assert said == "True" and limited <= 2
    _, free = arenas("off")
    assert free > 2  # the same threads without the limit: an arena each (up to 8 x cores)


def test_the_operators_setting_wins() -> None:
    said, count = arenas("limit", MALLOC_ARENA_MAX="4")
    assert said == "False" and 2 < count <= 4


def test_trim_outside_a_loop_is_at_once() -> None:
    before = memory.trims
    memory.trim_soon()
    assert memory.trims == before + 1


async def test_a_burst_is_trimmed_once_after_its_last_close(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.05)
    before = memory.trims
    for _ in range(5):
        memory.trim_soon()
        await asyncio.sleep(0.01)
    assert memory.trims == before
    await asyncio.sleep(0.1)
    assert memory.trims == before + 1


async def test_the_store_trims_after_its_burst_connections_close(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.05)
    before = memory.trims
    held = asyncio.Event()

    async def read() -> None:
        async with store.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await held.wait()

    tasks = [asyncio.create_task(read()) for _ in range(3)]  # the pool's one and two more
    await asyncio.sleep(0.2)
    assert store.engine.sync_engine.pool.checkedout() == 3  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    assert memory.trims == before  # nothing closed yet
    held.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.2)
    assert memory.trims == before + 1  # the two burst connections closed: one trim
    assert store.engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]


@pytest.fixture
def backend() -> str:
    return "sqlite"
