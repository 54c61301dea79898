"""rPPG estimators on synthetic traces: POS, CHROM and GREEN find a known rate, the measurement's
resolution and SNR, differentiability, the registry's errors."""

import numpy as np
import pytest
import torch

from faceveil.models.rppg import ESTIMATORS, create_estimator, measure

FPS = 30.0
TONE = np.array([0.33, 0.77, 0.53])  # the blood-volume pulse's relative strength in R, G, B
BASE = np.array([180.0, 120.0, 100.0])


def trace(bpm: float, seconds: float = 10, amp: float = 0.5, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A skin-mean trace in grey levels: a pulse of `amp` grey levels in G, slow illumination drift, noise."""
    t = np.arange(int(seconds * FPS)) / FPS
    rng = np.random.default_rng(seed)
    pulse = amp / TONE[1] * np.sin(2 * np.pi * bpm / 60 * t)[:, None] * TONE
    drift = 1 + 0.01 * np.sin(2 * np.pi * 0.05 * t)[:, None]
    return BASE * drift + pulse + rng.normal(0, noise, (len(t), 3))


@pytest.mark.parametrize("name", ["pos", "chrom", "green"])
@pytest.mark.parametrize("bpm", [55.0, 72.0, 100.0, 150.0])
def test_mean_estimators_read_the_rate(name, bpm):
    r = create_estimator(name).read_trace(trace(bpm), FPS)
    assert abs(r.bpm - bpm) < 1.5, r
    assert r.snr_db > 3, r


def test_measure_resolution_better_than_3_bpm_on_10_s():
    for bpm in np.linspace(50, 170, 25):
        t = np.arange(300) / FPS
        assert abs(measure(np.sin(2 * np.pi * bpm / 60 * t + 0.3), FPS).bpm - bpm) < 0.5


def test_noise_has_no_peak_above_3_db():
    rng = np.random.default_rng(1)
    for name in ("pos", "chrom", "green"):
        r = create_estimator(name).read_trace(BASE + rng.normal(0, 0.2, (300, 3)), FPS)
        assert r.snr_db < 3, (name, r)


def test_measure_of_nothing():
    assert measure(np.zeros(300), FPS).bpm is None
    assert measure(np.ones(10), FPS).bpm is None


@pytest.mark.parametrize("name", ["pos", "chrom", "green"])
def test_estimators_are_differentiable(name):
    x = torch.tensor(trace(72.0), requires_grad=True)
    create_estimator(name).signal(x, FPS).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_registry_names_and_errors():
    assert {"pos", "chrom", "green", "physnet"} <= set(ESTIMATORS.names())
    with pytest.raises(ValueError, match="unknown rPPG estimator 'posx'; choose one of"):
        create_estimator("posx")
    with pytest.raises(ValueError, match=r"\(T,H,W,3\)"):
        create_estimator("physnet").read_clip(np.zeros((10, 8, 8), np.uint8), FPS)
