"""Video-quality diagnosis on keyframes of clips encoded here with PyAV (libx264).

Each fault clip gets exactly its finding, with the measured value beyond the threshold;
the normal clips (a moving textured road scene, and the camera simulator's picture) get
none, and no frozen finding across their keyframes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from camrelay.errors import ConfigError
from camrelay.health.diagnosis import FrozenTracker, Picture, diagnose
from camrelay.health.picture import decode_keyframe, downscale
from camrelay.relay.sources.pattern import make_frame
from camrelay.settings import Thresholds, load_settings
from tests.health.scenes import Frame, Scene, encode, fault, keyframe_units

W, H = 640, 360
DEFAULTS = Thresholds()


def keyframes(make: Callable[[int], Frame], frames: int = 15, gop: int = 5) -> list[Picture]:
    return [downscale(decode_keyframe(unit)) for unit in keyframe_units(encode(make, frames, W, H, gop))]


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene(W, H)


@pytest.mark.parametrize(("clip", "kind"), [
    ("black", "black"),
    ("single_colour", "no_signal"),
    ("blurred", "blur"),
    ("covered", "occluded"),
    ("overexposed", "overexposed"),
    ("underexposed", "underexposed"),
    ("colour_cast", "colour_cast"),
    ("noisy", "noise"),
])
def test_fault_clip_gets_its_finding_with_the_measured_value(scene: Scene, clip: str,
                                                             kind: str) -> None:
    pictures = keyframes(fault(clip, scene))
    assert len(pictures) == 3
    for picture in pictures:
        assert picture.shape == (180, 320, 3)  # analysed downscaled
        findings = diagnose(picture, DEFAULTS)
        assert [f.kind for f in findings] == [kind]
        finding = findings[0]
        assert finding.threshold == getattr(DEFAULTS, {
            "black": "black_luma", "no_signal": "flat_std", "blur": "blur_laplacian",
            "occluded": "occluded_share", "overexposed": "overexposed_share",
            "underexposed": "underexposed_luma", "colour_cast": "colour_cast",
            "noise": "noise_sigma"}[kind])
        below = kind in ("black", "no_signal", "blur", "underexposed")
        assert (finding.value < finding.threshold) if below else (finding.value > finding.threshold)
        assert finding.as_dict()["value"] == round(finding.value, 3)


@pytest.mark.parametrize("clip", ["normal", "camsim"])
def test_normal_clips_get_no_finding_and_are_not_frozen(scene: Scene, clip: str) -> None:
    make = scene.frame if clip == "normal" else (lambda i: make_frame(i, W, H))
    tracker = FrozenTracker()
    pictures = keyframes(make, frames=40, gop=10)
    assert len(pictures) == 4
    for picture in pictures:
        assert diagnose(picture, DEFAULTS) == []
        assert tracker.sample(1, picture, DEFAULTS) is None


def test_frozen_picture_found_across_samples_within_a_tolerance(scene: Scene) -> None:
    pictures = keyframes(fault("frozen", scene), frames=20)
    tracker = FrozenTracker()
    # the encoder's keyframes of one still picture are not bit-identical: a tolerance
    assert not np.array_equal(pictures[0], pictures[1])
    results = [tracker.sample(5, p, DEFAULTS) for p in pictures]
    assert results[0] is None
    assert all(r is not None and r.kind == "frozen" and r.value < DEFAULTS.frozen_tolerance
               for r in results[1:])
    assert all(diagnose(p, DEFAULTS) == [] for p in pictures)  # a good picture, just stuck
    tracker.forget(5)
    assert tracker.sample(5, pictures[0], DEFAULTS) is None  # a new stream starts afresh
    # another camera is tracked on its own
    assert tracker.sample(6, pictures[0], DEFAULTS) is None


def test_flat_picture_is_no_signal_not_frozen(scene: Scene) -> None:
    tracker = FrozenTracker()
    for picture in keyframes(fault("black", scene)):
        assert tracker.sample(1, picture, DEFAULTS) is None


def test_category_overrides_from_settings(tmp_path: Path, scene: Scene) -> None:
    config = tmp_path / "camrelay.toml"
    config.write_text("[health.diagnosis]\nblur_laplacian = 50\n"
                      "[health.diagnosis.categories.tunnel]\nunderexposed_luma = 12\n")
    diagnosis = load_settings(config, env={}).health.diagnosis
    tunnel, bridge = diagnosis.for_category("tunnel"), diagnosis.for_category("bridge")
    assert (tunnel.underexposed_luma, tunnel.blur_laplacian) == (12, 50)
    assert (bridge.underexposed_luma, bridge.blur_laplacian) == (35, 50)
    dark = keyframes(fault("underexposed", scene), frames=5)[0]
    assert [f.kind for f in diagnose(dark, bridge)] == ["underexposed"]
    assert "underexposed" not in [f.kind for f in diagnose(dark, tunnel)]


@pytest.mark.parametrize(("text", "message"), [
    ("[health.diagnosis.categories.tunnel]\nblurry = 3\n", "tunnel.blurry: unknown threshold"),
    ("[health.diagnosis.categories.moon]\nblur_laplacian = 3\n", "'moon' is not in catalog"),
    ("[health.diagnosis]\ncategories = 3\n", "expected a table"),
    ("[health]\nperiod_seconds = 1\n", "health.period_seconds"),
])
def test_bad_diagnosis_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "camrelay.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={})


def test_bad_keyframe_is_a_decode_fault() -> None:
    from camrelay.errors import SourceUnavailable

    with pytest.raises(SourceUnavailable) as caught:
        decode_keyframe(b"\x00\x00\x00\x01\x65garbage")
    assert caught.value.reason == "decode"
