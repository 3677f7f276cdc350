"""Which node of a cluster serves a camera: the seam between the web layer and the cluster.

With ``redis_url`` set, :mod:`camrelay.cluster.node` implements :class:`Placement` over
Redis (leases, membership, tickets); the web layer (:mod:`camrelay.web.placement`) asks
it before a camera-owned route runs.  Without ``redis_url`` there is no placement and
every camera is served where the request arrives, as on one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from camrelay.access.seats import Occupancy

TICKET_PARAM = "ticket"  # the query parameter of a 307 to another node's WHEP URL


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node as ``GET /api/v1/cluster`` shows it: where it is and how loaded."""

    id: str
    url: str
    viewers: int
    cameras: int  # cameras it pulls (holds the lease of)
    max_cameras: int  # cluster.max_cameras (0: no limit)
    processes: int


@dataclass(frozen=True, slots=True)
class Census:
    """The live nodes and the live views per camera and per viewer unit, cluster-wide."""

    nodes: tuple[NodeLoad, ...]
    viewers: Occupancy


class Placement(Protocol):
    @property
    def public_url(self) -> str:
        """This node's base URL (no trailing slash)."""
        ...

    def origins(self) -> frozenset[str]:
        """The origins (scheme://host:port) of every live node, this one included."""
        ...

    async def place(self, camera_id: int) -> str | None:
        """None: serve ``camera_id`` here (this node holds its lease, or has just claimed
        it); else the base URL of the node that serves it.  Raises ``SourceUnavailable``
        when the holder cannot be reached or Redis cannot be asked."""
        ...

    async def mint_ticket(self, camera_id: int, token_digest: str) -> str:
        """A one-use ticket for ``camera_id`` standing for the bearer token of that digest."""
        ...

    async def redeem_ticket(self, ticket: str, camera_id: int) -> str | None:
        """The token digest a ticket stands for (consumed), or None if unknown, used,
        expired or minted for another camera."""
        ...

    async def forward(self, request: web.Request, base_url: str) -> web.StreamResponse:
        """Proxy ``request`` to the node at ``base_url`` and pass its answer back."""
        ...

    async def census(self) -> Census:
        """The nodes and viewers of the whole cluster, read from Redis (``SourceUnavailable``
        when it does not answer)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
