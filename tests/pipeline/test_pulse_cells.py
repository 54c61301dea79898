"""The pulse edit cell by cell and the one pass/fail rule over attacker regions: a pulse stronger in
one patch of skin than the mask's mean is removed from that patch too; a region whose pixels that are not
skin swing with the head reads the target once the cells are fixed for it (region_fix); `verdict` fails a region that
still shows a rate the edit did not put there; the data contract fails the run on such a track."""

import json

import numpy as np
import pandas as pd

from faceveil.models.rppg import create_estimator
from faceveil.models.rppg.edit import MAX_CELL_SCRUB, PBV, PulseSettings, cell_offsets, skin_trace
from faceveil.pipeline.pulse import verdict
from faceveil.validation.contracts import _gx, _suites, _validate, pulse_verdicts

FPS, T = 30.0, 300


def _cells(amps, seed=0):
    """(T, K, 3) cell means with a 72 bpm pulse of amps[k] grey levels (G) in cell k, plus sensor noise (0.3 grey levels in a cell's mean)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FPS
    pulse = np.sin(2 * np.pi * 1.2 * t)
    base = np.array([150.0, 110.0, 90.0])
    return np.stack([base + a / PBV[1] * pulse[:, None] * PBV + rng.normal(0, 0.3, (T, 3)) for a in amps], axis=1)


def test_each_cell_loses_its_own_pulse_not_only_the_mean():
    cells = _cells([1.5, 0.6, 0.0, 0.0])  # the pulse in the first two of four equal cells
    counts = np.full((T, 4), 100.0)
    delta = cell_offsets(cells, counts, FPS, PulseSettings("scrub"))
    pos = create_estimator("pos")
    assert pos.read_trace(cells[:, 0], FPS).snr_db > 4  # there before
    for k in range(4):  # gone from every cell (those that had none: no 72 bpm peak either)
        r = pos.read_trace(cells[:, k] + delta[:, k], FPS)
        assert r.snr_db <= 3 if k < 2 else not (abs(r.bpm - 72) <= 3 and r.snr_db > 3), (k, r)
    assert pos.read_trace(skin_trace(cells + delta, counts), FPS).snr_db <= 3  # and from the mask's mean
    # the whole mask's scrub alone (every cell the same offset) would leave 3/4 of it in the first cell
    same = np.repeat(delta.mean(axis=1, keepdims=True), 4, axis=1)
    assert pos.read_trace(cells[:, 0] + same[:, 0], FPS).snr_db > 3


def test_target_plants_one_pulse_everywhere_and_a_cell_departs_at_most_the_cap():
    cells = _cells([1.5, 0.5, 0.0])
    cells[:, 2, :] += 20 * np.sin(2 * np.pi * 1.0 * np.arange(T) / FPS)[:, None]  # an edge cell's motion
    counts = np.full((T, 3), 50.0)
    delta = cell_offsets(cells, counts, FPS, PulseSettings("target", bpm=100))
    chrom = create_estimator("chrom")
    for k in (0, 1):
        assert abs(chrom.read_trace(cells[:, k] + delta[:, k], FPS).bpm - 100) <= 3, k
    mean = delta.mean(axis=1, keepdims=True)
    assert np.abs(delta - mean).max() <= 2 * MAX_CELL_SCRUB + 1e-9  # the flicker an edge cell may get is bounded


def test_target_reads_in_a_region_whose_other_pixels_move():
    """Ten skin cells: a face box holds eight (90 % of its pixels; 0-1 the forehead) and eyes and brows
    (10 %) whose mean swings at 60 bpm with the head; two (ears, neck) lie outside it. The cell edit
    alone leaves GREEN on the box reading the swing; with the regions (mask, box, forehead) it reads 100
    in all three, every cell moved by at most region_fix.MAX_REGION_FIX."""
    from faceveil.models.rppg.region_fix import MAX_REGION_FIX

    cells = _cells([1.0] * 10)
    counts = np.full((T, 10), 100.0)
    other = np.array([60.0, 50.0, 45.0]) + 8 * np.sin(2 * np.pi * 1.0 * np.arange(T) / FPS)[:, None]
    shares = np.zeros((T, 3, 10), np.float32)
    shares[:, 0] = 0.1  # the mask
    shares[:, 1, :8] = 0.9 / 8  # the face box
    shares[:, 2, :2] = 0.5  # the forehead
    means = np.stack(
        [cells.mean(axis=1), np.einsum("tk,tkc->tc", shares[:, 1], cells) + 0.1 * other, cells[:, :2].mean(axis=1)],
        axis=1,
    )
    green = create_estimator("green")
    plain = cell_offsets(cells, counts, FPS, PulseSettings("target", bpm=100))
    fixed = cell_offsets(cells, counts, FPS, PulseSettings("target", bpm=100), (means, shares))
    read = lambda r, d: green.read_trace(means[:, r] + np.einsum("tk,tkc->tc", shares[:, r], d), FPS).bpm  # noqa: E731
    assert abs(read(1, plain) - 60) <= 3  # the swing wins in the box without the regions
    for r in range(3):
        assert abs(read(r, fixed) - 100) <= 3, r
    assert np.abs(fixed - plain).max() <= MAX_REGION_FIX + 1e-6


def test_verdict():
    ok = {
        "mask": {
            "before": {"pos": {"bpm": 72, "snr_db": 8}},
            "after": {"pos": {"bpm": 100.5, "snr_db": 9}, "green": {"bpm": 48, "snr_db": -1}},
        },
        "face box": {"before": {"chrom": {"bpm": 72, "snr_db": 5}}, "after": {"chrom": {"bpm": 99, "snr_db": 4}}},
        "neck": {"before": {"chrom": {"bpm": None, "snr_db": None}}, "after": {"chrom": {"bpm": None, "snr_db": None}}},
    }
    assert verdict("target:100", ok) is True
    leak = json.loads(json.dumps(ok))
    leak["face box"]["after"]["chrom"] = {"bpm": 72.5, "snr_db": 4.0}  # the real rate still shows in the box
    assert verdict("target:100", leak) is False
    weak = json.loads(json.dumps(ok))
    weak["mask"]["after"]["pos"] = {"bpm": 80, "snr_db": 1.0}  # the edit did not take in its own mask
    assert verdict("target:100", weak) is False
    scrub = {
        "mask": {"after": {"pos": {"bpm": 70, "snr_db": 1.0}}},
        "forehead": {"after": {"green": {"bpm": 72, "snr_db": 2.9}}},
    }
    assert verdict("scrub", scrub) is True
    scrub["forehead"]["after"]["green"]["snr_db"] = 3.5
    assert verdict("scrub", scrub) is False
    assert verdict("scrub", {}) is None


def test_the_contract_fails_a_track_whose_region_shows_a_rate():
    rows = pd.DataFrame(
        {
            "media_id": ["a", "a", "b"],
            "track_id": [0, 1, 0],
            "readings_json": [
                json.dumps({"regions_pass": True}),
                json.dumps({"regions_pass": None}),
                json.dumps({"regions_pass": False}),
            ],
        }
    )
    got = pulse_verdicts(rows)
    assert got.media_id.tolist() == ["a", "b"]  # the track with nothing read is not judged
    gx = _gx()
    suites = {"pulse": _suites(gx, checked=False)["pulse"]}
    report = _validate({"pulse": got}, suites, gx)
    assert not report.success and any("regions_pass" in f for f in report.failures)
    assert _validate({"pulse": got.iloc[:1]}, suites, gx).success
