"""A network link to a camera that can be cut and restored: a TCP forwarder on a fixed
127.0.0.1 port in front of the real RTSP simulator.

``await link.cut()`` resets every connection through it and closes its port (the camera
is gone: connections are refused); ``await link.restore()`` listens on the same port
again and returns the moment it accepts.  Counts the connections it accepted and those
on which the client sent something (an RTSP request), to tell checks from sessions.  :class:`Watcher` notes when units reach a consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from camrelay.relay.stream import Subscription


class CameraLink:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.requests = 0  # connections on which the client sent bytes
        self.restored_at = 0.0  # time.monotonic() when the port last began to accept
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, mount: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{mount.lstrip('/')}"

    async def restore(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._client, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.restored_at = time.monotonic()

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            first = await reader.read(65536)
            if not first:
                return
            self.requests += 1
            up_reader, upstream = await asyncio.open_connection(self.host, self.target_port)
            self._writers.add(upstream)
            upstream.write(first)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side ended: so does the other


def tcp_active_opens() -> int:
    """TCP connections this network namespace has initiated (SYNs sent, first ones)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])


class Watcher:
    """A consumer that notes when each unit reached it."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.times: list[float] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.sub.get()
            self.times.append(time.monotonic())

    def first_after(self, t: float) -> float | None:
        return next((x for x in self.times if x > t), None)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.sub.close()
