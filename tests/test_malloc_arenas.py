"""The server limits glibc's malloc arenas before its threads start (camrelay.server)."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import ctypes, sys, threading
from camrelay.server import limit_malloc_arenas
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
