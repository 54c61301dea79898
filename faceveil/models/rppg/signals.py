"""POS, CHROM and GREEN: pulse signals from a skin-mean RGB trace (T,3), as differentiable torch
functions (the pulse edit optimises through them). Each reads only the spatial mean of the skin,
which is what makes the edit cheap (models/rppg/edit.py).

- GREEN (Verkruysse 2008): the green channel, mean-normalised, band-passed.
- CHROM (de Haan & Jeanne 2013): X = 3R - 2G, Y = 1.5R + G - 1.5B of the mean-normalised trace,
  band-passed; S = X - (std X / std Y) Y per 1.6 s window, Hann overlap-added.
- POS (Wang et al. 2017): per 1.6 s window, the trace over its window mean projected on
  (G - B, G + B - 2R), h = S1 + (std S1 / std S2) S2, overlap-added; then band-passed.
"""

from __future__ import annotations

import math

from faceveil.models.rppg.base import BAND_HZ, ESTIMATORS, Estimator

WINDOW_S = 1.6
EPS = 1e-9


def bandpass(x, fps: float, band: tuple[float, float] = BAND_HZ):
    """Zero-phase band-pass along the first axis by FFT (a raised-cosine edge 0.1 Hz wide), after
    the least-squares line is taken out (an FFT wraps the trace around: a trend would come back as a
    step, whose broadband energy piles up at the band's low edge)."""
    import torch

    n = x.shape[0]
    t = torch.arange(n, dtype=x.dtype) - (n - 1) / 2.0
    t = t.reshape((-1,) + (1,) * (x.dim() - 1))
    x = x - x.mean(dim=0, keepdim=True) - t * ((t * x).sum(dim=0, keepdim=True) / (t * t).sum().clamp_min(1e-12))
    f = torch.fft.rfftfreq(n, 1.0 / fps, dtype=torch.float64)
    lo, hi, edge = band[0], band[1], 0.1
    gain = torch.clamp((f - (lo - edge)) / edge, 0, 1) * torch.clamp(((hi + edge) - f) / edge, 0, 1)
    gain = 0.5 - 0.5 * torch.cos(math.pi * gain)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return torch.fft.irfft(torch.fft.rfft(x, dim=0) * gain.reshape(shape).to(x.dtype), n=n, dim=0)


def _windows(n: int, fps: float) -> tuple[int, int]:
    w = max(2, int(round(WINDOW_S * fps)))
    return min(w, n), max(1, min(w, n) // 2)


def _overlap_add(parts, starts, n: int, win):
    import torch

    out = torch.zeros(n, dtype=parts.dtype)
    norm = torch.zeros(n, dtype=parts.dtype)
    for s, part in zip(starts, parts):
        out = out.index_add(0, torch.arange(s, s + len(part)), part * win)
        norm = norm.index_add(0, torch.arange(s, s + len(part)), win)
    return out / norm.clamp_min(EPS)


def _frames(x, fps: float):
    """(windows (K,w,...), their starts) covering the trace, the last one ending at its end."""
    n = x.shape[0]
    w, step = _windows(n, fps)
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    import torch

    return torch.stack([x[s : s + w] for s in starts]), starts


def pos(trace, fps: float):
    import torch

    x = torch.as_tensor(trace, dtype=torch.float64)
    win, starts = _frames(x, fps)  # (K,w,3)
    cn = win / win.mean(dim=1, keepdim=True).clamp_min(EPS)
    s1 = cn[..., 1] - cn[..., 2]
    s2 = cn[..., 1] + cn[..., 2] - 2 * cn[..., 0]
    h = s1 + s2 * (s1.std(dim=1, keepdim=True) / (s2.std(dim=1, keepdim=True) + EPS))
    h = h - h.mean(dim=1, keepdim=True)
    tri = torch.hann_window(win.shape[1] + 2, periodic=False, dtype=torch.float64)[1:-1]
    return bandpass(_overlap_add(h, starts, x.shape[0], tri), fps)


def chrom(trace, fps: float):
    import torch

    x = torch.as_tensor(trace, dtype=torch.float64)
    cn = x / x.mean(dim=0, keepdim=True).clamp_min(EPS)
    xs = bandpass(3 * cn[:, 0] - 2 * cn[:, 1], fps)
    ys = bandpass(1.5 * cn[:, 0] + cn[:, 1] - 1.5 * cn[:, 2], fps)
    both, starts = _frames(torch.stack([xs, ys], dim=1), fps)  # (K,w,2)
    s = both[..., 0] - both[..., 1] * (
        both[..., 0].std(dim=1, keepdim=True) / (both[..., 1].std(dim=1, keepdim=True) + EPS)
    )
    tri = torch.hann_window(both.shape[1] + 2, periodic=False, dtype=torch.float64)[1:-1]
    return _overlap_add(s, starts, x.shape[0], tri)


def green(trace, fps: float):
    import torch

    x = torch.as_tensor(trace, dtype=torch.float64)
    g = x[:, 1] / x[:, 1].mean().clamp_min(EPS)
    return bandpass(g - g.mean(), fps)


class _TraceEstimator(Estimator):
    def __init__(self, name: str, fn):
        self.name, self._fn = name, fn

    def signal(self, trace, fps: float):
        return self._fn(trace, fps)


for _name, _fn in (("pos", pos), ("chrom", chrom), ("green", green)):
    ESTIMATORS.register(_name)(lambda _n=_name, _f=_fn: _TraceEstimator(_n, _f))
