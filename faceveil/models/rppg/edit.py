"""The pulse edit (after Privacy-Phys, IEEE SPL 2022), adapted to what the estimators read.

Privacy-Phys minimises L = -pearson(G(x), y) + lambda * mse(x, z) over the pixels x inside the skin
mask S (z the original, y the target signal, G a fixed estimator). For estimators that read the
spatial mean of the skin (POS, CHROM, GREEN and every method built on a skin-mean trace), dL/dx is
the same for every masked pixel of a frame and channel (the mean's gradient is 1/|S|), so
optimising a per-frame per-channel offset delta (T,3) added inside the mask is exactly the
pixel-level optimisation, at the cost of Adam on T*3 numbers instead of T*|S|*3.

An edit that fools only the estimator it was optimised against is not enough, so the edit has two
parts (`pulse_offsets`):
- scrub (both modes): delta0 = -(the 0.7-4 Hz band of the skin-mean trace, every channel). Every
  mean-based estimator then finds no periodic signal in the heart-rate band, whatever its channel
  mix; only slow illumination changes and the broadband noise remain.
- target:BPM: delta1, a pulse at BPM planted along the skin's blood-volume direction (PBV, de Haan
  2014: pulsatile strength 0.33/0.77/0.53 in R/G/B of the normalised trace) with an amplitude like a
  real one (`strength`), then refined by Adam on the Privacy-Phys loss through POS (the estimator
  named by `estimator`), with delta1's energy held fixed (pearson is blind to scale, and lambda
  alone would shrink the planted pulse until only POS could read it).
Long tracks go in windows (`window_s`, crossfaded over `overlap_s`), so memory and the optimisation
stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PBV = np.array([0.33, 0.77, 0.53])
MAX_CELL_SCRUB = 2.0  # grey levels: a cell's own scrub departs from the whole skin's by no more (cell_offsets)
LR = 0.01  # Adam's step, as a share of the planted pulse's RMS: a refinement of the PBV pulse, not a new one


@dataclass(frozen=True)
class PulseSettings:
    """mode 'scrub' or 'target' (at `bpm`); `estimator`: the one optimised through; `lam`: the
    fidelity weight; `strength`: the planted pulse's amplitude in the green channel (grey levels;
    None: like the removed one, within 0.3-1.5)."""

    mode: str
    bpm: float | None = None
    estimator: str = "pos"
    lam: float = 0.1
    steps: int = 150
    strength: float | None = None
    window_s: float = 10.0
    overlap_s: float = 2.0
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> "PulseSettings | None":
        """'scrub', 'target:BPM' or None/''/'off'."""
        if not spec or spec == "off":
            return None
        if spec == "scrub":
            return cls("scrub")
        if spec.startswith("target:"):
            try:
                bpm = float(spec.split(":", 1)[1])
            except ValueError:
                bpm = -1.0
            if not 42.0 <= bpm <= 240.0:
                raise ValueError(f"--pulse {spec}: the target must be a heart rate in 42-240 bpm, e.g. target:100")
            return cls("target", bpm)
        raise ValueError(f"--pulse {spec!r}: use scrub or target:BPM (e.g. target:100)")

    def spec(self) -> str:
        return "scrub" if self.mode == "scrub" else f"target:{self.bpm:g}"


def fill_gaps(trace: np.ndarray) -> np.ndarray:
    """NaN rows (frames where the face was not seen) linearly interpolated; ends held."""
    x = np.array(trace, np.float64)
    ok = np.isfinite(x).all(axis=1)
    if not ok.any():
        raise ValueError("no frame of this trace has skin")
    idx = np.arange(len(x))
    for c in range(3):
        x[:, c] = np.interp(idx, idx[ok], x[ok, c])
    return x


SCRUB_BAND = (0.55, 4.4)  # wider than the heart-rate band, so no edge of it leaks back in


def scrub_band(n: int, fps: float) -> tuple[float, float]:
    """SCRUB_BAND, widened on short windows: a spectrum of n frames smears slow motion and lighting
    about 2/duration Hz into the heart-rate band, so that much more is removed (not below 0.2 Hz)."""
    margin = 2.0 * fps / max(n, 1)
    return max(0.2, min(SCRUB_BAND[0], 0.7 - margin)), min(fps / 2 - 0.1, max(SCRUB_BAND[1], 4.0 + margin))


def band_of(x: np.ndarray, fps: float, band: tuple[float, float] = SCRUB_BAND) -> np.ndarray:
    """The `band` of each channel of `x` (T,3): a linear trend taken out, mirror-padded."""
    import torch

    from faceveil.models.rppg.signals import bandpass

    t = np.arange(len(x))
    fit = np.polynomial.polynomial.polyfit(t, x, 1)
    r = x - (fit[0] + np.outer(t, fit[1]))
    pad = min(len(r) - 1, int(2 * fps))
    ext = np.concatenate([r[pad:0:-1], r, r[-2 : -pad - 2 : -1]]) if pad > 0 else r
    out = bandpass(torch.as_tensor(ext), fps, band).numpy()
    return out[pad : pad + len(r)]


def _window_offsets(z: np.ndarray, t0: int, fps: float, s: PulseSettings) -> np.ndarray:
    """delta (w,3) for one window of the trace `z` starting at frame t0."""
    d0 = -band_of(z, fps, scrub_band(len(z), fps))
    if s.mode == "scrub":
        return d0
    import torch

    from faceveil.models.rppg import create_estimator

    g = create_estimator(s.estimator)
    t = (t0 + np.arange(len(z))) / fps
    y = torch.as_tensor(np.sin(2 * np.pi * s.bpm / 60.0 * t))
    amp = s.strength if s.strength is not None else float(np.clip(np.sqrt(2) * d0[:, 1].std(), 0.3, 1.5))
    mean = z.mean(axis=0)
    direction = PBV * mean / (PBV[1] * mean[1])
    init = amp * np.outer(y.numpy(), direction)
    energy = float(np.sqrt((init**2).mean()))
    base = torch.as_tensor(z + d0)
    zt = torch.as_tensor(z)
    v = torch.tensor(init, requires_grad=True)
    opt = torch.optim.Adam([v], lr=LR * energy)
    for _ in range(s.steps):
        d1 = v * (energy / v.pow(2).mean().sqrt().clamp_min(1e-9))
        x = base + d1
        loss = -_pearson(g.signal(x, fps), y) + s.lam * (x - zt).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        d1 = v * (energy / v.pow(2).mean().sqrt().clamp_min(1e-9))
    return d0 + d1.numpy()


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)


def windows(n: int, fps: float, s: PulseSettings) -> list[tuple[int, int]]:
    """[start, stop) windows of about `window_s`, overlapping by `overlap_s`, covering n frames."""
    w = max(int(round(s.window_s * fps)), 2)
    if n <= w + w // 2:
        return [(0, n)]
    ov = min(int(round(s.overlap_s * fps)), w // 2)
    starts = list(range(0, n - w, w - ov)) + [n - w]
    return [(a, a + w) for a in sorted(set(starts))]


def pulse_offsets(trace: np.ndarray, fps: float, s: PulseSettings) -> np.ndarray:
    """The offsets delta (T,3), in grey levels, to add to the skin of each frame of one track whose
    skin-mean trace is `trace` (T,3; NaN rows where the face is missing). Windows are crossfaded
    linearly where they overlap."""
    z = fill_gaps(trace)
    n = len(z)
    if n < 2 * fps:  # too short for a heart rate: nothing an estimator could read, nothing to do
        return np.zeros((n, 3))
    out, weight = np.zeros((n, 3)), np.zeros(n)
    for a, b in windows(n, fps, s):
        ramp = np.ones(b - a)
        ov = int(round(s.overlap_s * fps))
        if a > 0:
            ramp[:ov] = np.linspace(0, 1, ov + 2)[1:-1]
        if b < n:
            ramp[-ov:] = np.minimum(ramp[-ov:], np.linspace(1, 0, ov + 2)[1:-1])
        out[a:b] += ramp[:, None] * _window_offsets(z[a:b], a, fps, s)
        weight[a:b] += ramp
    return out / np.maximum(weight, 1e-9)[:, None]


def skin_trace(cells: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The whole skin's mean RGB (T,3) from its cells' means (T,K,3) and pixel counts (T,K); NaN rows
    where no cell was seen."""
    n = counts.sum(axis=1)
    out = np.einsum("tk,tkc->tc", counts, np.nan_to_num(cells)) / np.maximum(n, 1)[:, None]
    return np.where((n > 0)[:, None], out, np.nan)


def cell_offsets(
    cells: np.ndarray,
    counts: np.ndarray,
    fps: float,
    s: PulseSettings,
    regions: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The offsets (T,K,3) for each skin cell of one track (cells: (T,K,3) means, counts: (T,K) pixels,
    skin.label_cells). The whole skin's edit (`pulse_offsets` of its mean: the scrub and, for target,
    the planted pulse) is every cell's, with the scrub swapped for the cell's own (the heart-rate band
    of that cell's mean removed) wherever the cell is seen for 2 s or more: so the band is gone from
    every patch of skin an estimator may read, not only from the whole mask's mean, while the planted
    pulse is one and the same everywhere. A cell's own scrub differs from the whole's by at most
    MAX_CELL_SCRUB: beyond that its band is motion at the mask's edge (pixels coming and going), not a
    pulse, and following it would make the edge flicker. For target:BPM with `regions` ((T,R,3) each
    attacker region's means, (T,R,K) its cells' shares: region_fix.region_fix) the cells are then moved
    so that every region reads the planted pulse alone, not the band its pixels outside the skin (eyes,
    brows, hair) bring as the head moves (a scrub leaves no peak there already: it adds none)."""
    whole = skin_trace(cells, counts)
    delta = pulse_offsets(whole, fps, s)
    out = np.repeat(delta[:, None], cells.shape[1], axis=1)
    if not np.isfinite(whole).all(axis=1).any():
        return out
    scrub = PulseSettings("scrub", window_s=s.window_s, overlap_s=s.overlap_s)
    own = pulse_offsets(whole, fps, scrub)
    for k in np.flatnonzero((counts > 0).sum(axis=0) >= 2 * fps):
        out[:, k] += np.clip(pulse_offsets(cells[:, k], fps, scrub) - own, -MAX_CELL_SCRUB, MAX_CELL_SCRUB)
    if regions is not None and s.mode == "target":
        from faceveil.models.rppg.region_fix import region_fix

        band = scrub_band(len(whole), fps)
        out = region_fix(regions[0], regions[1], out, delta - own, fps, lambda x: band_of(fill_gaps(x), fps, band))
    return out


def apply_offset(rgb: np.ndarray, region, delta: np.ndarray, rng: np.random.Generator) -> None:
    """Adds `delta` to the skin pixels of `region` (a skin.SkinRegion) in place: (3,) to every pixel,
    or (parts, 3), one row per part; with stochastic rounding (seeded dither), so an offset below one
    grey level survives in the skin's mean; no other pixel changes."""
    if not region.n or not np.any(delta):
        return
    win = rgb[region.y0 : region.y1, region.x0 : region.x1]
    delta = np.asarray(delta, np.float32)
    if delta.ndim == 2:
        delta = delta[region.parts[region.mask].astype(np.int64) - 1]
    px = win[region.mask].astype(np.float32) + delta
    px = np.floor(px + rng.random(px.shape, dtype=np.float32))
    win[region.mask] = np.clip(px, 0, 255).astype(np.uint8)
