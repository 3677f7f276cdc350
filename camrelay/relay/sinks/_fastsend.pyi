"""Type stub of the optional C extension (``_fastsend.c``)."""

from typing import Any, Final

SRTP_MAX_TRAILER_LEN: Final[int]
PACKET_BUFFER: Final[int]
MAX_UNIT_PACKETS: Final[int]

class UnitSender:
    def __init__(self, sock: Any, addr: tuple[Any, ...], srtp: int, protect: int, b0: int,
                 pt: int, tail: bytes, owner: object = None) -> None: ...
    def send_unit(self, payloads: tuple[bytes, ...], seq: int, ts: int, /
                  ) -> tuple[int, int, int, list[bytes]] | None: ...
