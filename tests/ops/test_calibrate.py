"""The search threshold from labelled photos: it must hold on people the calibration has not seen."""

import numpy as np
import pytest

from faceveil.ops.calibrate import empirical_threshold, look_alike_bound, search_threshold


def _people(rng, n_people, photos=5, spread=0.5, noise=0.3, dim=128):
    """Unit vectors of `n_people` synthetic people: centres share a common direction (faces look alike,
    as in dlib's space, where strangers score ~0.84), photos scatter around their centre."""
    common = rng.normal(size=dim)
    common /= np.linalg.norm(common)
    v, ids = [], []
    for p in range(n_people):
        c = common + spread * rng.normal(size=dim) / np.sqrt(dim)
        for _ in range(photos):
            x = c + noise * rng.normal(size=dim) / np.sqrt(dim)
            v.append(x / np.linalg.norm(x))
            ids.append(p)
    return np.array(v), np.array(ids)


def _search_fmr(v, ids, threshold):
    """Share of searches (each vector against everyone else's) whose best wrong match clears it."""
    sims = v @ v.T
    return float((np.where(ids[:, None] != ids[None, :], sims, -1).max(1) >= threshold).mean())


def _search_tmr(v, ids, threshold):
    """Share of searches whose best match of the same person (another photo) clears it."""
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    return float((np.where(same, v @ v.T, -1).max(1) >= threshold).mean())


def test_the_threshold_holds_on_people_it_has_not_seen():
    """Calibrated on 10 people, measured on archives of 30 others: the photos alone (the old rule)
    miss the 1 % target on the unseen (about 15 %); the look-alike bound keeps it, over 20 draws,
    and the same person's other photos still clear it."""
    rng = np.random.default_rng(0)
    shown, bound, found = [], [], []
    for _ in range(20):
        v, ids = _people(rng, 10)
        res = search_threshold(v, ids, 0.01, people=30)
        test_v, test_ids = _people(rng, 30)
        shown.append(_search_fmr(test_v, test_ids, res["empirical_threshold"]))
        bound.append(_search_fmr(test_v, test_ids, res["threshold"]))
        found.append(_search_tmr(test_v, test_ids, res["threshold"]))
        assert res["threshold"] >= res["empirical_threshold"] and res["fmr"] <= 0.01
    assert np.mean(shown) > 0.02, np.mean(shown)  # the problem the bound solves is there
    assert np.mean(bound) <= 0.01, np.mean(bound)
    assert np.mean(found) >= 0.95, np.mean(found)  # not bought by a threshold nobody clears


def test_more_people_in_the_archive_raise_the_threshold_and_fewer_than_three_are_refused():
    rng = np.random.default_rng(1)
    v, ids = _people(rng, 8)
    cuts = [look_alike_bound(v, ids, 0.01, n, 0.9) for n in (8, 100, 10_000)]
    assert cuts[0] < cuts[1] < cuts[2] < 1
    assert search_threshold(v, ids, 0.01, people=2)["people"] == 8  # never fewer than the labelled
    assert empirical_threshold(v, ids, 0.01) <= search_threshold(v, ids, 0.01)["threshold"]
    with pytest.raises(ValueError, match="at least three people"):
        search_threshold(v[ids < 2], ids[ids < 2], 0.01)
