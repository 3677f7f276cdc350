#!/usr/bin/env python3
"""Issue 12: what the journal's anchor file adds to one access-journal append.

    .venv/bin/python scripts/bench/journal_append.py [--events 2000] [--rounds 5]

On a fresh SQLite store in a temporary directory (the default deployment: journal in
its own file, WAL, synchronous=NORMAL), the real ``Journal.append`` is timed in three
variants, in turn within each round (the order rotates): ``off`` (the anchor's update
replaced by nothing: the journal before issue 12), ``anchor`` (as shipped: after each
commit, open + flock + pread + pwrite of one slot), ``anchor+fsync`` (the same with an
fsync of the file, which camrelay does only when it resets the anchor).  Prints the median time per append of each variant and its ratio to ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from camrelay.access.journal import Journal, JournalEvent
from camrelay.settings import load_settings
from camrelay.store import Store

VARIANTS = ("off", "anchor", "anchor+fsync")


async def one(variant: str, events: int, base: Path) -> float:
    settings = load_settings(env={"CAMRELAY_DATA_DIR": str(base / variant)})
    store = await Store.open(settings)
    journal = Journal(settings, store)
    await journal.start()
    anchor = journal.anchor
    if variant == "off":
        anchor.advance = lambda seq, mac: None  # type: ignore[method-assign]
    elif variant == "anchor+fsync":
        plain = anchor.advance

        def advance(seq: int, mac: str) -> None:
            plain(seq, mac)
            with anchor._locked() as fd:
                os.fsync(fd)
        anchor.advance = advance  # type: ignore[method-assign]
    event = JournalEvent(kind="view.open", action="live", username="bench", unit_code="330000",
                         camera_id=1, camera_name="bench camera", purpose="routine monitoring",
                         basis="own", client_address="127.0.0.1", result="ok")
    try:
        for _ in range(50):  # warm-up
            await journal.append(event)
        started = time.perf_counter()
        for _ in range(events):
            await journal.append(event)
        took = time.perf_counter() - started
        assert (await journal.verify()).ok
    finally:
        await journal.close()
        await store.close()
    return took / events


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        with tempfile.TemporaryDirectory(prefix="camrelay-bench-") as tmp:
            for variant in order:
                results[variant].append(await one(variant, args.events, Path(tmp) / str(r)))
    base = statistics.median(results["off"])
    print(f"journal append, {args.events} events x {args.rounds} rounds (median per append)")
    for variant in VARIANTS:
        med = statistics.median(results[variant])
        spread = ", ".join(f"{x * 1e6:.0f}" for x in results[variant])
        print(f"  {variant:13s} {med * 1e6:7.0f} us  x{med / base:.2f}  (rounds: {spread} us)")


if __name__ == "__main__":
    asyncio.run(main())
