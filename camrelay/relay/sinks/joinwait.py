"""Join at the camera's next keyframe when it is nearer than the catch-up.

A joiner gets the cached GOP's keyframe at once (its first picture).  What it needs
next to show the live picture is either the rest of the GOP (a paced burst that its
decoder must work through: up to 4 s of P-frames, ~100 at 25 fps, which a browser on a
small machine decodes at 5-10 ms a 720p frame) or the camera's next keyframe.  Late in
a long GOP the keyframe is the nearer of the two: the joiner then shows the still
keyframe until the next one comes and is live from there, with nothing more of the old
GOP sent.  :func:`plan_join` decides per join; ``ForwardTrack`` (``webrtc.py``) carries
it out and falls back to a GOP replay (what a keyframe request gets) when the predicted
keyframe does not come (:attr:`JoinWait.deadline`).

A camera that makes a keyframe when asked (:mod:`camrelay.relay.keyframes`) is asked
instead when the catch-up would be long and its own next keyframe is not near: the
joiner then waits for the asked keyframe (a fraction of a second), whatever the GOP.

The next keyframe is predicted from the stream's measured keyframe interval (the median
of its last intervals, ``Stream.keyframe_interval``); the catch-up is estimated from the
GOP's frame count at :data:`FRAME_SECONDS` per 720p-sized frame, scaled by the
picture's pixels.  A join waits only when the keyframe is due within ``wait_seconds``
(``relay.join_wait_seconds``) *and* sooner than that estimate, so a short catch-up (a
small picture, an early join, a short GOP) is never traded for a wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from camrelay.relay.keyframes import KeyframeAsk
from camrelay.relay.media import VIDEO_CLOCK, AccessUnit

# A receiver's decode time per 1280x720 frame of a join burst: headless Chromium's
# ``totalDecodeTime`` on the 2-vCPU test VM was 4.6-10.5 ms (BENCHMARKS.md, "Chromium
# joiners with the playout-delay header extension"); other sizes scale by pixels.
# Overestimated for a fast receiver, the cost is a wait of at most ``wait_seconds``.
FRAME_SECONDS = 0.008
REFERENCE_PIXELS = 1280 * 720
# How late the predicted keyframe may be before the joiner gets the GOP replayed
# instead (a camera whose GOP varies by a frame or two still joins at its keyframe).
GRACE_SECONDS = 0.25
# A catch-up estimated shorter than this is sent rather than a keyframe asked for: about
# what a camera takes to answer (a SOAP round trip and a frame or two).
ASK_AFTER_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class JoinWait:
    """A join that resumes at the camera's next keyframe."""

    due: float  # seconds of stream time from the newest cached unit to the keyframe
    deadline: int  # a unit later than this pts (90 kHz) and still no keyframe: replay
    asked: KeyframeAsk | None = None  # the keyframe asked of the camera, if it was


def catch_up_seconds(frames: int, pixels: int) -> float:
    """The estimated time a receiver needs to decode ``frames`` frames of ``pixels``."""
    return frames * FRAME_SECONDS * pixels / REFERENCE_PIXELS


def plan_join(gop: Sequence[AccessUnit], interval: int | None, pixels: int,
              wait_seconds: float, ask: Callable[[], KeyframeAsk | None] | None = None
              ) -> JoinWait | None:
    """Whether a joiner given ``gop`` (keyframe first, newest last) should wait for the
    next keyframe rather than be sent the rest of the GOP; None: send it (a burst).

    ``ask`` asks the camera for a keyframe now (``Subscription.ask_keyframe``: what to
    wait on, None when it cannot be asked); it is called only when the
    catch-up would take longer than :data:`ASK_AFTER_SECONDS` and the camera's own next
    keyframe is not that near."""
    if len(gop) < 2 or not gop[0].keyframe:
        return None
    natural = None
    if wait_seconds > 0 and interval:
        due_pts = gop[0].pts + interval
        due = (due_pts - gop[-1].pts) / VIDEO_CLOCK
        # not overdue (the camera's GOP grew), not too far, and sooner than the catch-up
        if 0 < due <= wait_seconds and due < catch_up_seconds(len(gop) - 1, pixels):
            natural = JoinWait(due, due_pts + int(GRACE_SECONDS * VIDEO_CLOCK))
    if natural is None or natural.due > ASK_AFTER_SECONDS:
        return plan_ask(gop, pixels, ask) or natural
    return natural


def plan_ask(gop: Sequence[AccessUnit], pixels: int,
             ask: Callable[[], KeyframeAsk | None] | None) -> JoinWait | None:
    """Ask the camera for a keyframe when catching up on ``gop`` would take longer than
    :data:`ASK_AFTER_SECONDS` (a join, or a viewer's keyframe request): the wait for the
    asked keyframe, or None (a short catch-up, or the camera cannot be asked now)."""
    if (ask is None or len(gop) < 2 or not gop[0].keyframe
            or catch_up_seconds(len(gop) - 1, pixels) <= ASK_AFTER_SECONDS):
        return None
    asked = ask()
    if asked is None:
        return None
    wait = max(0.0, asked.until - time.monotonic())
    return JoinWait(wait, gop[-1].pts + int(wait * VIDEO_CLOCK), asked)
