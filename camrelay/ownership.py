"""Which worker process owns a camera (``relay.workers`` >= 2): camera ``c`` belongs to
worker ``c % N``.  Shared by the composition root, the web layer's guard and the front."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CAMERA_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Ownership:
    """Worker ``index`` of ``count``: it owns camera ``c`` when ``c % count == index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} outside 0..{self.count - 1}")

    def owner_of(self, camera_id: int) -> int:
        return camera_id % self.count

    def owns(self, camera_id: int) -> bool:
        return camera_id % self.count == self.index

    @property
    def node_suffix(self) -> str:
        return f"-w{self.index}"


def parse_camera_id(raw: str) -> int | None:
    """The camera id the app's ``camera_id_of`` would accept, else None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_CAMERA_ID else None
