"""The leak rate's 95 % upper bound that a sample of checked faces supports (Clopper-Pearson, one-sided),
against values computed by hand, and carried into the run's per-media figures."""

import math

import pytest

from faceveil.validation.leak_bound import leak_upper_bound
from faceveil.validation.privacy import summarize


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _by_hand(k: int, n: int) -> float:
    """The p at which seeing k or fewer leaks in n has probability 5 % (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _binomial_cdf(k, n, mid) > 0.05 else (lo, mid)
    return lo


def test_bound_matches_the_hand_computation():
    assert leak_upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100), abs=1e-9)  # 2.95 %: the "rule of three"
    assert leak_upper_bound(0, 100) == pytest.approx(0.0295, abs=1e-4)
    for k, n in ((1, 50), (3, 200), (0, 7)):
        assert leak_upper_bound(k, n) == pytest.approx(_by_hand(k, n), abs=1e-6)
    assert leak_upper_bound(0, 0) == 1.0 and leak_upper_bound(5, 5) == 1.0
    assert leak_upper_bound(0, 1000) < leak_upper_bound(0, 100) < leak_upper_bound(0, 30)  # more checks, tighter


def test_a_synthetic_media_carries_its_bound():
    """Three checked frames of a media, 10 faces each, one unmasked face found in the second."""
    frames = [
        {
            "media_id": "m",
            "frame_index": i,
            "faces_in": 10,
            "leak_faces": int(i == 1),
            "leak_max_score": 0.0,
            "leak_boxes": None,
            "background_psnr": 40.0,
            "background_ssim": 0.99,
        }
        for i in range(3)
    ]
    leak = summarize(frames, [], 0.9)["leak"]
    assert leak["faces_checked"] == 31 and leak["faces_found"] == 1
    assert leak["rate"] == pytest.approx(1 / 31)
    assert leak["upper_95"] == pytest.approx(_by_hand(1, 31), abs=1e-6)
    assert 0.14 < leak["upper_95"] < 0.15  # 1 of 31: the rate may be up to ~14.6 %
