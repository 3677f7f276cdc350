"""An RTSP/1.0 client (RFC 2326) on asyncio that pulls a video media (and its audio).

:class:`RtspClient` walks OPTIONS, DESCRIBE (following up to five redirects), SETUP of
each media (video on interleaved channels 0-1, audio on 2-3) over TCP (interleaved on the control connection) or UDP (a client port pair
on the control connection's local address, datagrams accepted from the camera's
address only) and PLAY; then :meth:`RtspClient.serve` keeps the session alive
(GET_PARAMETER, or OPTIONS when the camera does not list it, every half session
timeout) until the camera ends it or no media arrives for ``read_timeout`` seconds.
:meth:`RtspClient.close` sends TEARDOWN (without waiting for the answer) and closes
every socket.  Basic and Digest authentication are in :mod:`.auth`, the control
connection in :mod:`.connection`.

Every failure is a :class:`~camrelay.errors.SourceUnavailable` with a reason and a
message that names the camera by its URL without credentials; the password only goes
into ``Authorization`` headers.  RTCP from the camera is read and ignored; nothing is
sent anywhere but to the camera.

With ``require`` (an RTSP option tag such as :data:`ONVIF_BACKCHANNEL`) every DESCRIBE,
SETUP and PLAY carries ``Require:``; a camera that does not know the option answers
``551 Option not supported`` (a ``SourceUnavailable`` with reason ``unsupported``).
:meth:`RtspClient.send_rtp` writes RTP to the camera on an interleaved channel (the
back-channel, :mod:`camrelay.relay.backchannel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

from camrelay.errors import SourceUnavailable
from camrelay.redact import redact_text, strip_credentials
from camrelay.relay.rtsp.auth import Authorizer, choose_challenge
from camrelay.relay.rtsp.connection import (
    PacketHandler,
    ProtocolError,
    Response,
    RtspConnection,
)
from camrelay.relay.rtsp.sdp import MediaDescription, SessionDescription, parse_sdp

log = logging.getLogger(__name__)

USER_AGENT = "camrelay"
ONVIF_BACKCHANNEL = "www.onvif.org/ver20/backchannel"  # ONVIF Streaming Spec 5.3
REQUIRED_FOR = ("DESCRIBE", "SETUP", "PLAY")
MAX_REDIRECTS = 5
DEFAULT_SESSION_TIMEOUT = 60.0
CLOSE_TIMEOUT = 1.0
UDP_RECEIVE_BUFFER = 1 << 20
UDP_BURST = 256  # datagrams read per wakeup at most

Reason = Literal["unreachable", "auth", "timeout", "unsupported"]

RecvDatagrams = Callable[[int, bytes, int], tuple[list[bytes], int, int]]

_recv_datagrams: RecvDatagrams | None = None
if os.environ.get("CAMRELAY_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from camrelay.relay.rtsp._fastrecv import recv_datagrams as _recv_datagrams
    except ImportError:  # optional: built only where setup.py found a C compiler
        pass


class Redirected(Exception):
    """DESCRIBE redirected to a URL this client does not speak (``rtsps://``)."""

    def __init__(self, url: str) -> None:
        super().__init__(strip_credentials(url))
        self.url = url


@dataclass(frozen=True, slots=True)
class Description:
    url: str  # after redirects
    base: str  # Content-Base / Content-Location / the request URL
    sdp: SessionDescription


def resolve_control(base: str, control: str | None) -> str:
    """A media or session control attribute as an absolute URL (the way cameras and
    FFmpeg mean it: relative controls are appended to the base, not RFC 3986-merged)."""
    if not control or control == "*":
        return base
    if control.lower().startswith(("rtsp://", "rtsps://")):
        return control
    if control.startswith("/"):
        return urljoin(base, control)
    if not base.endswith("/") and not control.startswith("?"):
        base += "/"
    return base + control


def _params(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(";"):
        name, _, val = item.strip().partition("=")
        if name:
            out[name.strip().lower()] = val.strip().strip('"')
    return out


def _port_pair(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, _, second = text.partition("-")
    if not first.isdigit() or (second and not second.isdigit()):
        return None
    a = int(first)
    return a, int(second) if second else a + 1


class _UdpReader:
    """RTP or RTCP from the camera's address, straight from a non-blocking socket.

    Each wakeup drains what the socket holds (up to :data:`UDP_BURST` datagrams): with
    the C extension ``_fastrecv`` in ``recvmmsg`` calls (the last, empty read costs one
    system call and no exception), else one ``recvfrom_into`` per datagram into a
    preallocated buffer.  asyncio's datagram transport reads one datagram per wakeup into
    a fresh 256 KiB buffer, which costs more than the depacketising.  Datagrams from
    anywhere but the camera are counted and dropped; with no handler (RTCP) they are read
    and ignored.
    """

    def __init__(self, conn: RtspConnection, sock: socket.socket, host: str,
                 handler: PacketHandler | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = conn
        self._sock = sock
        self._fd = sock.fileno()
        self._host = host
        self._packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                        host)
        self._handler = handler
        # the Python loop's buffer; the C drain reads into its own
        self._buf = bytearray(65536 if _recv_datagrams is None else 0)
        self._view = memoryview(self._buf)
        self._closed = False
        self.foreign = 0
        sock.setblocking(False)
        self._loop.add_reader(self._fd, self._read)

    def _read(self) -> None:
        if _recv_datagrams is not None:
            self._read_batch(_recv_datagrams)
            return
        sock, buf, view, host, handler = self._sock, self._buf, self._view, self._host, self._handler
        now = time.monotonic()
        media = False
        try:
            for _ in range(UDP_BURST):
                try:
                    size, addr = sock.recvfrom_into(buf)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[0] != host:
                    self.foreign += 1
                elif handler is not None:
                    media = True
                    handler(view[:size].tobytes(), now)
        except OSError as exc:  # e.g. an ICMP error queued on the socket
            log.debug("UDP receive error: %s", exc)
        except Exception as exc:  # noqa: BLE001  a handler's bug: the owner re-raises it
            self.close()
            self._conn.fail(exc)
            return
        if media:
            self._conn.last_media = now

    def _read_batch(self, recv: RecvDatagrams) -> None:
        try:
            datagrams, foreign, oversize = recv(self._fd, self._packed, UDP_BURST)
        except OSError as exc:  # e.g. an ICMP error queued on the socket
            log.debug("UDP receive error: %s", exc)
            return
        self.foreign += foreign + oversize
        if not datagrams or self._handler is None:
            return
        now = time.monotonic()
        handler = self._handler
        try:
            for datagram in datagrams:
                handler(datagram, now)
        except Exception as exc:  # noqa: BLE001  a handler's bug: the owner re-raises it
            self.close()
            self._conn.fail(exc)
            return
        self._conn.last_media = now

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._view.release()
        self._sock.close()


class RtspClient:
    """One RTSP session with one camera; see the module doc.  Use it once:
    :meth:`describe`, :meth:`setup`, :meth:`play`, :meth:`serve`, and always
    :meth:`close`.  ``url`` carries no credentials; the password only goes into
    ``Authorization`` headers."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 transport: Literal["tcp", "udp"] = "tcp", connect_timeout: float = 5.0,
                 read_timeout: float = 5.0, require: str | None = None) -> None:
        self.url = strip_credentials(url)
        self.require = require
        self.username = username
        self._password = password
        self.transport = transport
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._conn: RtspConnection | None = None
        self._cseq = 0
        self._auth: Authorizer | None = None
        self._session: str | None = None
        self._session_timeout = DEFAULT_SESSION_TIMEOUT
        self._play_url = self.url
        self._base = self.url
        self._get_parameter = True
        self._udp: list[_UdpReader] = []
        self._keepalive_task: asyncio.Task[None] | None = None
        self._playing = False

    # errors ------------------------------------------------------------------------
    def _error(self, reason: Reason, what: str, detail: str | None = None) -> SourceUnavailable:
        text = f"{self.url}: {what}"
        if detail:
            text += f" ({redact_text(detail, self._password)})"
        return SourceUnavailable(text, reason=reason)

    def _check(self, response: Response, method: str) -> None:
        if response.ok:
            return
        code = response.status
        detail = f"{method}: {code} {response.reason}".strip()
        if code in (401, 403):
            what = ("the camera refused the credentials" if self.username is not None
                    else "the camera needs credentials")
            raise self._error("auth", what, detail)
        if code == 404:
            raise self._error("unreachable", "the camera has no stream at this path", detail)
        if code == 551:
            raise self._error("unsupported", "the camera does not support "
                              f"{self.require or 'an option the request requires'}", detail)
        if code == 461:
            raise self._error("unsupported", f"the camera does not send RTP over "
                              f"{self.transport.upper()}", detail)
        raise self._error("unreachable", f"error during {method}", detail)

    def _lost(self, conn: RtspConnection, method: str) -> SourceUnavailable:
        error = conn.error
        if isinstance(error, SourceUnavailable):
            return error
        if isinstance(error, ProtocolError):
            return self._error("unreachable", f"protocol error during {method}", str(error))
        if error is not None:
            raise error  # a bug in a packet handler: not the camera's fault
        return self._error("unreachable", f"the camera closed the connection during {method}")

    # requests ------------------------------------------------------------------------
    def _join(self, url: str, reference: str) -> str:
        """A URL from the camera (Location, Content-Base) made absolute."""
        try:
            joined = urljoin(url, reference)
            urlsplit(joined).port  # noqa: B018  raises ValueError on a bad host or port
        except ValueError:
            raise self._error("unreachable", "the camera gave an invalid URL") from None
        return strip_credentials(joined)

    async def _connect(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or 554
        except ValueError:
            host, port = None, 0
        if not host:
            raise self._error("unsupported", "the URL has no valid host and port")
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(RtspConnection, host, port), self.connect_timeout)
        except TimeoutError:
            raise self._error("timeout", f"no connection within {self.connect_timeout:g} s"
                              ) from None
        except OSError as exc:
            raise self._error("unreachable", "cannot connect to the camera",
                              exc.strerror or type(exc).__name__) from None
        self._conn = conn

    def _encode(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        if any(c in url for c in " \r\n") or not url.isprintable():
            raise self._error("unreachable", "the camera gave an invalid URL")
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._auth is not None:
            lines.append(f"Authorization: {self._auth.header(method, url)}")
        if self._session is not None:
            lines.append(f"Session: {self._session}")
        if self.require is not None and method in REQUIRED_FOR:
            lines.append(f"Require: {self.require}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _exchange(self, method: str, url: str, headers: dict[str, str]) -> Response:
        conn = self._conn
        if conn is None:
            raise self._error("unreachable", f"not connected for {method}")
        message = self._encode(method, url, headers)
        try:
            future = conn.send(self._cseq, message)
        except ConnectionError:
            raise self._lost(conn, method) from None
        timeout = self.read_timeout
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            conn.forget(future)
            raise self._error("timeout", f"no answer to {method} within {timeout:g} s"
                              ) from None
        except (ConnectionError, ProtocolError):
            raise self._lost(conn, method) from None

    async def request(self, method: str, url: str,
                      headers: dict[str, str] | None = None) -> Response:
        """Send one request; answer an authentication challenge (once, or again when
        the camera says the nonce went stale)."""
        headers = headers or {}
        response = await self._exchange(method, url, headers)
        for attempt in range(2):
            if response.status != 401 or self.username is None:
                return response
            challenge = choose_challenge(response.all("www-authenticate"))
            if challenge is None:
                return response
            if attempt and not challenge.stale:
                return response  # the credentials were refused
            self._auth = Authorizer(challenge, self.username, self._password or "")
            response = await self._exchange(method, url, headers)
        return response

    # the session -----------------------------------------------------------------------
    async def describe(self) -> Description:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            await self._connect(url)
            options = await self.request("OPTIONS", url)
            if options.status in (401, 403):
                self._check(options, "OPTIONS")
            public = options.header("public") if options.ok else None
            if public is not None:
                self._get_parameter = "GET_PARAMETER" in public.upper()
            response = await self.request("DESCRIBE", url, {"Accept": "application/sdp"})
            location = response.header("location")
            if 300 <= response.status < 400 and location:
                target = self._join(url, location)
                log.info("%s: redirected to %s", self.url, target)
                await self._drop()
                self._auth = None
                if target.lower().startswith("rtsps://"):
                    raise Redirected(target)
                if not target.lower().startswith("rtsp://"):
                    raise self._error("unsupported", "redirected to an unsupported URL",
                                      strip_credentials(target))
                url = self.url = target
                continue
            self._check(response, "DESCRIBE")
            base = response.header("content-base") or response.header("content-location")
            self._base = self._join(url, base) if base else url
            sdp = parse_sdp(response.body.decode("utf-8", errors="replace"))
            self._play_url = resolve_control(self._base, sdp.control)
            return Description(url, self._base, sdp)
        raise self._error("unreachable", f"more than {MAX_REDIRECTS} redirects")

    async def setup(self, media: MediaDescription, on_rtp: PacketHandler,
                    channel: int = 0) -> int | None:
        """SETUP one media; ``channel`` is its first interleaved channel over TCP (the
        second media of a session takes 2).  Over TCP, the RTP channel the camera chose
        (what :meth:`send_rtp` writes on for a back-channel); None over UDP."""
        conn = self._conn
        if conn is None or conn.transport is None:
            raise self._error("unreachable", "not connected for SETUP")
        url = resolve_control(self._base, media.control)
        if self.transport == "tcp":
            transport = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
            sockets: tuple[socket.socket, socket.socket] | None = None
        else:
            sockets = self._bind_pair(conn)
            port = sockets[0].getsockname()[1]
            transport = f"RTP/AVP;unicast;client_port={port}-{port + 1}"
        try:
            response = await self.request("SETUP", url, {"Transport": transport})
            self._check(response, "SETUP")
            session = response.header("session")
            if not session:
                raise self._error("unreachable", "the camera answered SETUP without a session")
            params = _params(session)
            self._session = session.split(";", 1)[0].strip()
            with contextlib.suppress(ValueError):
                self._session_timeout = max(2.0, float(params.get("timeout", "")))
            answer = _params(response.header("transport") or "")
            if sockets is None:
                if "client_port" in answer and "interleaved" not in answer:
                    raise self._error("unsupported", "the camera offered UDP for a TCP request")
                channels = _port_pair(answer.get("interleaved")) or (channel, channel + 1)
                conn.channels[channels[0]] = on_rtp
                return channels[0]
            if "interleaved" in answer:
                raise self._error("unsupported", "the camera offered TCP for a UDP request")
            pair, sockets = sockets, None
            self._open_udp(conn, pair, on_rtp)
            return None
        finally:
            if sockets is not None:
                for sock in sockets:
                    sock.close()

    def _bind_pair(self, conn: RtspConnection) -> tuple[socket.socket, socket.socket]:
        """Two UDP sockets on consecutive ports (RTP even, RTCP odd) on the address and
        family the control connection uses."""
        assert conn.transport is not None
        local = conn.transport.get_extra_info("sockname")
        family = socket.AF_INET6 if ":" in str(local[0]) else socket.AF_INET
        for _ in range(64):
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((local[0], 0, *local[2:]))
                port = rtp.getsockname()[1]
                if port % 2 == 0 and port < 65535:
                    rtcp.bind((local[0], port + 1, *local[2:]))
                    with contextlib.suppress(OSError):
                        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
                    return rtp, rtcp
            except OSError:
                pass
            rtp.close()
            rtcp.close()
        raise self._error("unreachable", "no free UDP port pair for RTP")

    def _open_udp(self, conn: RtspConnection, pair: tuple[socket.socket, socket.socket],
                  on_rtp: PacketHandler) -> None:
        assert conn.transport is not None
        camera = str(conn.transport.get_extra_info("peername")[0])
        self._udp.append(_UdpReader(conn, pair[0], camera, on_rtp))
        self._udp.append(_UdpReader(conn, pair[1], camera, None))

    async def play(self) -> None:
        response = await self.request("PLAY", self._play_url, {"Range": "npt=0.000-"})
        self._check(response, "PLAY")
        self._playing = True
        assert self._conn is not None
        self._conn.last_media = time.monotonic()
        self._keepalive_task = asyncio.create_task(self._keepalive(),
                                                   name=f"rtsp keep-alive {self.url}")

    async def serve(self) -> None:
        """Until the camera ends the session (returns) or it fails (raises)."""
        conn = self._conn
        if conn is None:
            raise self._error("unreachable", "not playing")
        timeout = self.read_timeout
        while True:
            remaining = conn.last_media + timeout - time.monotonic()
            if remaining <= 0:
                raise self._error("timeout", f"no video for {timeout:g} s")
            done, _ = await asyncio.wait([conn.closed], timeout=remaining)
            if done:
                if conn.error is not None:
                    raise self._lost(conn, "PLAY")
                log.debug("%s: the camera ended the session", self.url)
                return

    def send_rtp(self, channel: int, packet: bytes) -> None:
        """One RTP packet to the camera on an interleaved ``channel`` (over TCP)."""
        conn = self._conn
        if conn is None:
            raise self._error("unreachable", "not playing")
        try:
            conn.send_interleaved(channel, packet)
        except ConnectionError:
            raise self._lost(conn, "PLAY") from None

    async def ended(self) -> None:
        """Until the camera closes the connection (returns) or it fails (raises); unlike
        :meth:`serve`, whether media arrives does not matter."""
        conn = self._conn
        if conn is None:
            raise self._error("unreachable", "not playing")
        await asyncio.shield(conn.closed)
        if conn.error is not None:
            raise self._lost(conn, "PLAY")

    async def _keepalive(self) -> None:
        interval = self._session_timeout / 2
        while True:
            await asyncio.sleep(interval)  # a timer, not a signal
            method = "GET_PARAMETER" if self._get_parameter else "OPTIONS"
            try:
                response = await self.request(method, self._play_url)
            except SourceUnavailable as exc:
                log.debug("%s: keep-alive failed: %s", self.url, exc.detail)
                continue
            if response.status == 454:  # Session Not Found: it expired on the camera
                if self._conn is not None:
                    self._conn.fail(self._error("unreachable", "the camera dropped the session",
                                                f"{method}: 454 {response.reason}"))
                return
            if not response.ok and method == "GET_PARAMETER":
                self._get_parameter = False

    # ending -----------------------------------------------------------------------------
    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.transport is None:
            return
        conn.transport.close()
        done, _ = await asyncio.wait([conn.closed], timeout=CLOSE_TIMEOUT)
        if not done:
            conn.transport.abort()
            await asyncio.wait([conn.closed], timeout=CLOSE_TIMEOUT)

    async def close(self) -> None:
        """TEARDOWN (best effort, no wait) and close every socket; safe to call twice."""
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.debug("%s: keep-alive ended: %r", self.url, task.exception())
        conn = self._conn
        if (self._playing and conn is not None and conn.transport is not None
                and not conn.transport.is_closing()):
            self._playing = False
            try:
                message = self._encode("TEARDOWN", self._play_url, {})
                conn.transport.write(message)
            except SourceUnavailable:
                pass
        udp, self._udp = self._udp, []
        for reader in udp:
            reader.close()
        await self._drop()
