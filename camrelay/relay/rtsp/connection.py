"""One RTSP/1.0 control connection: requests out, responses and interleaved data in.

:class:`RtspConnection` is an :class:`asyncio.Protocol`.  Everything the camera sends
goes through one parse loop over the received chunk: ``$``-framed interleaved packets
(RFC 2326 10.12) go to the handler of their channel, RTSP responses to the request
waiting for them, and requests from the camera (some send OPTIONS or GET_PARAMETER as
keep-alives) get a short answer.  Header blocks and bodies are bounded; anything else
from the camera is a protocol error that fails the connection, never an exception in
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
MAX_BODY_BYTES = 256 * 1024

PacketHandler = Callable[[bytes, float], None]
"""(packet, arrival as ``time.monotonic()``)"""


class ProtocolError(Exception):
    """The camera sent something that is not RTSP."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _find_head_end(data: bytes, off: int, n: int) -> tuple[int, int]:
    """(index of the blank line, its length) or (-1, 0)."""
    limit = min(n, off + MAX_HEADER_BYTES + 4)
    crlf = data.find(b"\r\n\r\n", off, limit)
    lf = data.find(b"\n\n", off, limit)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return (crlf, 4) if crlf >= 0 else (-1, 0)


def parse_head(head: bytes) -> tuple[list[str], dict[str, list[str]]]:
    """Start line words and headers of one message head (without the blank line)."""
    text = head.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].split(" ", 2)
    headers: dict[str, list[str]] = {}
    last: str | None = None
    count = 0
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and last is not None:  # folded continuation
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ProtocolError(f"bad header line {line[:40]!r}")
        count += 1
        if count > MAX_HEADERS:
            raise ProtocolError("too many headers")
        last = name.strip().lower()
        headers.setdefault(last, []).append(value.strip())
    return start, headers


class RtspConnection(asyncio.Protocol):
    """See the module doc.  :attr:`closed` resolves when the connection is gone."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.error: BaseException | None = None  # why it failed, when we failed it
        self.last_data = self.last_media = time.monotonic()  # any data / a handled packet
        self.channels: dict[int, PacketHandler] = {}
        self._waiter: tuple[int, asyncio.Future[Response]] | None = None
        self._rest = b""

    # asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's does not derive from asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._rest = b""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter[1].done():
            waiter[1].set_exception(ConnectionResetError("the camera closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_data = now
        if self._rest:
            data = self._rest + data
        n = len(data)
        off = 0
        channels = self.channels
        media = False
        try:
            while off < n:
                if data[off] == 0x24:  # "$": an interleaved packet
                    if off + 4 > n:
                        break
                    end = off + 4 + ((data[off + 2] << 8) | data[off + 3])
                    if end > n:
                        break
                    handler = channels.get(data[off + 1])
                    if handler is not None:
                        media = True
                        handler(data[off + 4:end], now)
                    off = end
                else:
                    used = self._message(data, off, n)
                    if not used:
                        break
                    off += used
        except ProtocolError as exc:
            self.fail(exc)
            return
        except Exception as exc:  # noqa: BLE001  a handler's bug: the owner re-raises it
            self.fail(exc)
            return
        self._rest = data[off:]
        if media:
            self.last_media = now

    # requests --------------------------------------------------------------------
    def send(self, cseq: int, message: bytes) -> asyncio.Future[Response]:
        """Write one request; the future gets the response with this CSeq."""
        if self.transport is None or self.transport.is_closing() or self.closed.done():
            raise ConnectionResetError("the connection is closed")
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = (cseq, future)
        self.transport.write(message)
        return future

    def send_interleaved(self, channel: int, packet: bytes) -> None:
        """Write one ``$``-framed packet (RFC 2326 10.12) on ``channel``: what the client
        sends the camera (an ONVIF back-channel's RTP)."""
        if self.transport is None or self.transport.is_closing() or self.closed.done():
            raise ConnectionResetError("the connection is closed")
        if len(packet) > 0xFFFF:
            raise ValueError("an interleaved packet is at most 65535 bytes")
        self.transport.write(bytes((0x24, channel)) + len(packet).to_bytes(2, "big") + packet)

    def forget(self, future: asyncio.Future[Response]) -> None:
        if self._waiter is not None and self._waiter[1] is future:
            self._waiter = None

    def fail(self, exc: BaseException) -> None:
        """Close the connection because of ``exc`` (kept in :attr:`error`)."""
        if self.error is None:
            self.error = exc
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter[1].done():
            waiter[1].set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # parsing ---------------------------------------------------------------------
    def _message(self, data: bytes, off: int, n: int) -> int:
        """Parse one RTSP message at ``off``; bytes used, or 0 if it is incomplete."""
        if data[off] not in b"RAGSOPTD":  # "RTSP/..." or a request from the camera
            raise ProtocolError(f"unexpected byte 0x{data[off]:02x} from the camera")
        head_end, blank = _find_head_end(data, off, n)
        if head_end < 0:
            if n - off > MAX_HEADER_BYTES:
                raise ProtocolError("RTSP header block too long")
            return 0
        start, headers = parse_head(data[off:head_end])
        length_text = headers.get("content-length", ["0"])[0]
        if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
            raise ProtocolError(f"bad Content-Length {length_text[:20]!r}")
        body_start = head_end + blank
        body_end = body_start + int(length_text)
        if body_end > n:
            return 0
        body = data[body_start:body_end]
        if start[0].startswith("RTSP/"):
            if len(start) < 2 or len(start[1]) != 3 or not start[1].isdigit():
                raise ProtocolError(f"bad status line {' '.join(start)[:60]!r}")
            self._response(Response(int(start[1]), start[2] if len(start) > 2 else "",
                                    headers, body))
        elif len(start) == 3 and start[2].startswith("RTSP/"):
            self._answer(start[0], headers)
        else:
            raise ProtocolError(f"not an RTSP message: {' '.join(start)[:60]!r}")
        return body_end - off

    def _response(self, response: Response) -> None:
        waiter = self._waiter
        cseq = response.header("cseq")
        if waiter is None or (cseq is not None and cseq.strip() != str(waiter[0])):
            log.debug("ignoring an RTSP response nobody waits for (CSeq %s)", cseq)
            return
        self._waiter = None
        if not waiter[1].done():
            waiter[1].set_result(response)

    def _answer(self, method: str, headers: dict[str, list[str]]) -> None:
        cseq = headers.get("cseq", ["0"])[0]
        status = "200 OK" if method in ("OPTIONS", "GET_PARAMETER") else "501 Not Implemented"
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n\r\n".encode())
