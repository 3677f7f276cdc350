"""What talk-back to a camera's ONVIF back-channel costs camrelay's event loop per second
of speech, next to the Opus decoding aiortc does for it anyway (in its decoder thread).

    .venv/bin/python scripts/bench/backchannel.py [--seconds 60] [--rounds 5]

A 440 Hz tone, 48 kHz stereo, is encoded to Opus once (as a browser's microphone would
send it); each round then times, over the same packets, aiortc's Opus decoder (the
baseline) and camrelay's G711Packetizer (resample to 8 kHz mono, G.711 µ-law, 20 ms RTP
packets) on the decoded frames.  Prints CPU milliseconds per second of speech for both
and their ratio, per round and the median.
"""

from __future__ import annotations

import argparse
import fractions
import statistics
import time

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

from camrelay.relay.backchannel import G711Packetizer

RATE = 48_000
SAMPLES = 960  # 20 ms


def tone(frames: int) -> list[av.AudioFrame]:
    out = []
    for i in range(frames):
        t = (i * SAMPLES + np.arange(SAMPLES)) / RATE
        mono = (10_000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate, frame.pts = RATE, i * SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        out.append(frame)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    frames = args.seconds * 50
    encoder = OpusEncoder()
    packets = [p for f in tone(frames) for p in encoder.encode(f)[0]]
    ratios, decode_ms, g711_ms = [], [], []
    for n in range(args.rounds):
        decoder = OpusDecoder()
        start = time.process_time()
        decoded = [f for i, p in enumerate(packets)
                   for f in decoder.decode(JitterFrame(data=p, timestamp=i * SAMPLES))]
        decode = (time.process_time() - start) * 1000 / args.seconds
        packetizer = G711Packetizer("PCMU", 0)
        start = time.process_time()
        sent = sum(len(packetizer.push(f)) for f in decoded)
        g711 = (time.process_time() - start) * 1000 / args.seconds
        assert sent >= frames - 2, sent
        decode_ms.append(decode)
        g711_ms.append(g711)
        ratios.append(g711 / decode)
        print(f"round {n + 1}: Opus decode {decode:.2f} ms/s, G.711 path {g711:.2f} ms/s, "
              f"ratio {g711 / decode:.2f} ({sent} packets)")
    print(f"median: Opus decode {statistics.median(decode_ms):.2f} ms/s, G.711 path "
          f"{statistics.median(g711_ms):.2f} ms/s, ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
