"""The fan-out's NACK ring: one entry per unit, answering exactly as the per-packet ring
it replaced (a packet can be resent while fewer than ``RING_SIZE`` packets followed it).

The reference is that per-packet ring (slot ``seq % RING_SIZE`` holds the sequence
number, payload, timestamp and marker of the last packet sent there); units of random
sizes, sequence numbers wrapping at 2**16.
"""

from __future__ import annotations

import random

import pytest

from camrelay.relay.sinks.fanout import RING_SIZE, FanoutSender

pytestmark = pytest.mark.netns


def sender(first_seq: int) -> FanoutSender:
    # nothing is sent here: no source, packetizer or link
    fanout = FanoutSender(source=None, packetizer=None,  # type: ignore[arg-type]
                          label="ring")
    fanout._seq = first_seq
    return fanout


def record(fanout: FanoutSender, payloads: tuple[bytes, ...], ts: int) -> None:
    """What ``_send_unit`` does besides sending."""
    seq = fanout._seq
    fanout._seq = (seq + len(payloads)) & 0xFFFF
    fanout._record(seq, payloads, ts)


@pytest.mark.parametrize("first_seq", [0, 65_000, 65_535 - RING_SIZE // 2])
def test_lookups_match_the_per_packet_ring(first_seq: int) -> None:
    rng = random.Random(first_seq)
    fanout = sender(first_seq)
    reference: list[tuple[int, bytes, int, bool] | None] = [None] * RING_SIZE
    seq = first_seq
    for unit in range(900):
        count = rng.choice([1, 1, 2, 5, 13, 40, 300]) if unit != 450 else RING_SIZE + 7
        payloads = tuple(f"{unit}:{i}".encode() for i in range(count))
        ts = unit * 3600
        record(fanout, payloads, ts)
        for i, payload in enumerate(payloads):
            reference[seq % RING_SIZE] = (seq, payload, ts, i == count - 1)
            seq = (seq + 1) & 0xFFFF
        # NACKs for recent, old, never sent and wrapped-around sequence numbers
        asked = [(seq - d) & 0xFFFF for d in (1, 2, count, RING_SIZE - 1, RING_SIZE,
                                              RING_SIZE + 1, 5000, 0, 40_000)]
        asked += [rng.randrange(65_536) for _ in range(5)]
        for nacked in asked:
            slot = reference[nacked % RING_SIZE]
            expected = slot[1:] if slot is not None and slot[0] == nacked else None
            assert fanout._lookup(nacked) == expected, (unit, nacked)
