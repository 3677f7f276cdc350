"""Real PostgreSQL and redis-server for the tests, started on loopback in a temp dir.

The Debian packages are installed by scripts/setup-test-env.sh; each server here is a
private instance (its own data directory and port), stopped when the session ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a port, not a signal between our own tasks
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run scripts/setup-test-env.sh")
    return found[-1]


@contextmanager
def postgres() -> Iterator[str]:
    """A private PostgreSQL; yields a URL of its ``postgres`` database (no password)."""
    root = Path(tempfile.mkdtemp(prefix="camrelay-pg-"))
    data = root / "data"
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*run_as, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "camrelay",
                    "--no-sync", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    proc = subprocess.Popen(
        [*run_as, _pg_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(root), "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "postgres")
        deadline = time.monotonic() + 30
        while subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             check=False, stdout=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not become ready")
            time.sleep(0.1)
        yield f"postgresql+asyncpg://camrelay@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


class RedisServer:
    """A private redis-server on a fixed loopback port that a test can stop and start
    again on the same port (no persistence: it comes back empty)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="camrelay-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    with redis_server() as server:
        yield server.url
