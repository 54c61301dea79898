"""The rPPG estimator interface, its registry, and the one measurement every estimator's signal goes
through: heart rate = the spectral peak in 0.7-4 Hz (42-240 bpm), peak SNR after de Haan."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceveil.models.registry import Registry

BAND_HZ = (0.7, 4.0)
SNR_HALF_WIDTH_HZ = 0.1  # +-6 bpm around the peak and its first harmonic


@dataclass(frozen=True)
class Reading:
    """One estimator's reading of a clip: heart rate (bpm; None when there is no signal) and the peak
    SNR (dB)."""

    bpm: float | None
    snr_db: float


class Estimator:
    """An rPPG estimator. `from_trace` estimators read the skin-mean RGB trace (T,3) at fps and are
    torch-differentiable (`signal`); `from_clip` ones read face crops (T,H,W,3 uint8) and only
    measure (`clip_signal`)."""

    name: str = ""
    from_trace: bool = True

    def signal(self, trace, fps: float):  # torch (T,3) -> torch (T,)
        raise NotImplementedError

    def clip_signal(self, clip: np.ndarray, fps: float) -> tuple[np.ndarray, float]:
        """(pulse signal, its sample rate) from face crops."""
        raise NotImplementedError

    def read_trace(self, trace: np.ndarray, fps: float) -> Reading:
        import torch

        sig = self.signal(torch.as_tensor(np.asarray(trace, np.float64)), fps).detach().numpy()
        return measure(sig, fps)

    def read_clip(self, clip: np.ndarray, fps: float) -> Reading:
        sig, rate = self.clip_signal(clip, fps)
        return measure(sig, rate)


ESTIMATORS: Registry[Estimator] = Registry("rPPG estimator")


def spectrum(signal: np.ndarray, fps: float, pad_to: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, power) of the mean-removed, Hann-windowed signal, zero-padded to `pad_to`
    points (0.055 bpm bins at 30 fps)."""
    x = np.asarray(signal, np.float64)
    x = x - x.mean()
    n = max(pad_to, len(x))
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)), n)) ** 2
    return np.fft.rfftfreq(n, 1.0 / fps), p


def measure(signal: np.ndarray, fps: float) -> Reading:
    """Heart rate from the highest spectral peak in 0.7-4 Hz (refined by a parabola through the
    peak bin and its neighbours) and the peak SNR in dB: the power within +-0.1 Hz of the peak and
    of its first harmonic against the rest of the 0.7-4 Hz band."""
    x = np.asarray(signal, np.float64)
    if len(x) < 2 * fps or not np.isfinite(x).all() or np.ptp(x) == 0:
        return Reading(None, float("-inf"))
    f, p = spectrum(x, fps)
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    idx = np.flatnonzero(band)
    k = idx[np.argmax(p[idx])]
    peak = f[k]
    if 0 < k < len(p) - 1:
        a, b, c = np.log(p[k - 1 : k + 2] + 1e-300)
        den = a - 2 * b + c
        if den < 0:
            peak = f[k] + 0.5 * (a - c) / den * (f[1] - f[0])
    near = (np.abs(f - peak) <= SNR_HALF_WIDTH_HZ) | (np.abs(f - 2 * peak) <= SNR_HALF_WIDTH_HZ)
    sig, rest = p[band & near].sum(), p[band & ~near].sum()
    snr = 10 * np.log10(sig / rest) if rest > 0 else float("inf")
    return Reading(float(peak * 60.0), float(snr))
