"""Type stub of the optional C extension (``_fastsend.c``)."""

from typing import Any, Final

SRTP_MAX_TRAILER_LEN: Final[int]
PACKET_BUFFER: Final[int]
MAX_UNIT_PACKETS: Final[int]
GSO_MAX_SEGMENTS: Final[int]
GSO_MAX_BYTES: Final[int]

class UnitSender:
    def __init__(self, sock: Any, addr: tuple[Any, ...], srtp: int, protect: int, b0: int,
                 pt: int, tail: bytes, owner: object = None, *, gso: bool = True) -> None: ...
    def send_unit(self, payloads: tuple[bytes, ...], seq: int, ts: int, /
                  ) -> tuple[int, int, int, list[bytes]] | None: ...
    @property
    def gso(self) -> bool:
        """True while units go out with UDP GSO: asked for and not refused by the kernel."""
    @property
    def gso_error(self) -> int:
        """The errno with which the kernel refused GSO (0: never)."""
    @property
    def gso_messages(self) -> int: ...
    @property
    def gso_packets(self) -> int: ...
