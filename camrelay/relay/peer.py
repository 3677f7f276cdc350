"""Peer connections of the relay: taking an offer, and how a receiving one (a WHIP
publisher, a talk-back speaker) ends.

:func:`take_offer` sets a client's SDP offer on a new peer connection, or refuses it
as bad input (WHEP viewers, WHIP publishers and talk-back speakers alike).

:class:`PeerWatch` follows one aiortc peer connection's state; :meth:`PeerWatch.ended`
returns, with the reason in words, when it failed, was closed, or never connected within
the connect timeout.  Its owner then closes everything it holds, ending with
:func:`end_peer` (its tasks, the peer connection, then its end callback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from camrelay.errors import BadRequest
from camrelay.tasks import wait_any

log = logging.getLogger(__name__)


async def take_offer(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Set ``offer_sdp`` as ``pc``'s remote description; ``BadRequest`` if aiortc refuses it."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    except asyncio.CancelledError:
        raise
    except Exception as err:  # aiortc raises what it likes on a malformed offer
        raise BadRequest(f"the SDP offer was refused: {type(err).__name__}: {err}") from err


class PeerWatch:
    """The connection state of ``pc`` as two events (connected; failed or closed)."""

    def __init__(self, pc: RTCPeerConnection, label: str) -> None:
        self.pc = pc
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            state = pc.connectionState
            log.debug("[%s] connection %s", label, state)
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed"):
                self.failed.set()

    async def ended(self, connect_timeout: float, peer: str) -> str:
        """Wait until the connection is over; why, naming the remote ``peer``."""
        try:
            async with asyncio.timeout(connect_timeout):
                await wait_any(self.connected, self.failed)
        except TimeoutError:
            return f"{peer} did not connect"
        if not self.failed.is_set():
            await self.failed.wait()
        return f"connection closed by {peer}" if self.pc.connectionState == "closed" \
            else "ICE/DTLS failed"


async def end_peer(label: str, pc: RTCPeerConnection, tasks: Iterable[asyncio.Task[Any] | None],
                   on_end: Callable[[], Awaitable[None]] | None) -> None:
    """The end of a receiving session: its ``tasks`` stopped (not the one running this),
    ``pc`` closed, then ``on_end`` (the journal) told; a failure of either is logged and
    the rest still runs."""
    for task in tasks:
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    try:
        await pc.close()
    except Exception:  # aiortc teardown must not keep the rest from closing
        log.exception("[%s] peer connection close failed", label)
    if on_end is not None:
        try:
            await on_end()
        except Exception:  # the journal's failure is logged by it; go on closing
            log.exception("[%s] end callback failed", label)
