"""The pulse edit on a face clip with a known 72 bpm pulse (a real photo from ../shared/data/faces,
moved a few pixels): target:100 optimised through POS makes CHROM, GREEN (and PhysNet, slow) read
100 +- 3; scrub leaves no 0.7-4 Hz peak above 3 dB; PSNR >= 50 dB; no pixel outside the skin masks
changes. The estimators read the clip's own pulse skin, not the edit's traces. Also: the settings'
grammar, windows and the skin mask's geometry (no data needed)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from faceveil.models.rppg import create_estimator
from faceveil.models.rppg.edit import PulseSettings, apply_offset, pulse_offsets, windows
from faceveil.models.rppg.skin import skin_region
from faceveil.validation.image_quality import masked_psnr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pulseclip import make_clip  # noqa: E402

PHOTO = "faces/deepface_id29/2.jpg"


@pytest.fixture(scope="module")
def clip(shared):
    return make_clip(str(shared / PHOTO), bpm=72.0, seconds=10.0, amp=0.5)


def _edited(clip, spec: str):
    h, w = clip.frames.shape[1:3]
    regions = [skin_region(lm, b, w, h) for lm, b in zip(clip.landmarks, clip.boxes)]
    trace = np.stack([r.mean(f) for r, f in zip(regions, clip.frames)])
    delta = pulse_offsets(trace, clip.fps, PulseSettings.parse(spec))
    out = clip.frames.copy()
    for i, (f, r) in enumerate(zip(out, regions)):
        apply_offset(f, r, delta[i], np.random.default_rng((0, i)))
    masks = np.stack([r.full(h, w) for r in regions])
    return out, masks


def _read(clip, frames, names=("pos", "chrom", "green")):
    return {n: create_estimator(n).read_trace(clip.trace(frames), clip.fps) for n in names}


@pytest.mark.shared_data
def test_before_the_edit_the_estimators_read_72(clip):
    for name, r in _read(clip, clip.frames).items():
        assert abs(r.bpm - 72) <= 3 and r.snr_db > 3, (name, r)


@pytest.mark.shared_data
def test_target_100_through_pos_fools_chrom_and_green(clip, figures):
    out, masks = _edited(clip, "target:100")
    got = _read(clip, out)
    figures.append(
        "pulse target:100 (model level): "
        + ", ".join(f"{n} {r.bpm:.1f} bpm {r.snr_db:.1f} dB" for n, r in got.items())
        + f", PSNR {masked_psnr(clip.frames, out):.1f} dB"
    )
    for name, r in got.items():
        assert abs(r.bpm - 100) <= 3, (name, r)
    assert masked_psnr(clip.frames, out) >= 50
    assert not ((out != clip.frames).any(-1) & ~masks).any()  # only skin-mask pixels changed


@pytest.mark.shared_data
def test_scrub_leaves_no_peak(clip, figures):
    out, masks = _edited(clip, "scrub")
    got = _read(clip, out)
    figures.append(
        "pulse scrub (model level): "
        + ", ".join(f"{n} peak SNR {r.snr_db:.1f} dB" for n, r in got.items())
        + f", PSNR {masked_psnr(clip.frames, out):.1f} dB"
    )
    for name, r in got.items():
        assert r.snr_db <= 3, (name, r)
    assert masked_psnr(clip.frames, out) >= 50
    assert not ((out != clip.frames).any(-1) & ~masks).any()


@pytest.mark.slow
@pytest.mark.shared_data
def test_physnet_is_fooled_too(clip, figures):
    """PhysNet (open-rppg, pretrained on PURE) reads the face crops, not a skin mean: it was not in
    the optimisation."""
    net = create_estimator("physnet")
    before = net.read_clip(clip.crops(), clip.fps)
    target, _ = _edited(clip, "target:100")
    scrub, _ = _edited(clip, "scrub")
    after, scrubbed = net.read_clip(clip.crops(target), clip.fps), net.read_clip(clip.crops(scrub), clip.fps)
    figures.append(
        f"physnet: before {before.bpm:.1f} bpm ({before.snr_db:.1f} dB), after target:100 {after.bpm:.1f} "
        f"({after.snr_db:.1f} dB), after scrub peak SNR {scrubbed.snr_db:.1f} dB"
    )
    assert abs(before.bpm - 72) <= 3
    assert abs(after.bpm - 100) <= 3
    assert scrubbed.snr_db <= 3


def test_settings_grammar():
    assert PulseSettings.parse("scrub").mode == "scrub"
    assert PulseSettings.parse("target:100").bpm == 100.0
    assert PulseSettings.parse("target:100").spec() == "target:100"
    assert PulseSettings.parse(None) is None and PulseSettings.parse("off") is None
    for bad in ("target:", "target:20", "target:abc", "remove"):
        with pytest.raises(ValueError, match="--pulse"):
            PulseSettings.parse(bad)


def test_windows_cover_long_tracks_with_overlap():
    s = PulseSettings("scrub")
    ws = windows(30 * 60, 30.0, s)  # a minute at 30 fps
    assert ws[0][0] == 0 and ws[-1][1] == 1800
    assert all(b - a == 300 for a, b in ws)
    assert all(a2 < b1 for (_, b1), (a2, _) in zip(ws, ws[1:]))  # they overlap: crossfaded


def test_long_trace_is_scrubbed_window_by_window():
    fps, n = 30.0, 30 * 45
    t = np.arange(n) / fps
    trace = np.array([180.0, 120.0, 100.0]) + 0.5 * np.sin(2 * np.pi * 1.2 * t)[:, None] * [0.4, 1, 0.7]
    trace[100:110] = np.nan  # the face missed for a few frames
    out = trace + pulse_offsets(trace, fps, PulseSettings("scrub"))
    ok = np.isfinite(out).all(axis=1)
    r = create_estimator("green").read_trace(out[ok], fps)
    assert r.snr_db <= 3, r


def test_skin_mask_avoids_eyes_mouth_and_the_box_outside():
    lm = np.array([[40, 50], [80, 50], [60, 70], [45, 95], [75, 95]], np.float32)
    box = [20, 10, 100, 120]
    m = skin_region(lm, box, 160, 160).full(160, 160)
    assert m.sum() > 1000
    for x, y in lm[[0, 1, 3, 4]]:  # eyes and mouth corners, with a margin
        assert not m[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4].any()
    assert not m[:, :20].any() and not m[:, 100:].any() and not m[:10].any() and not m[120:].any()
    assert m[65, 60]  # the nose (between the eyes and its tip) is skin
    nan = skin_region(np.full((5, 2), np.nan), box, 160, 160)  # no landmarks: from the box
    assert nan.n > 500
