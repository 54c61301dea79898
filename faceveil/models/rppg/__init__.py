"""rPPG (remote photoplethysmography) estimators behind one registry, the skin mask they read and
the pulse edit (Privacy-Phys) that removes or replaces what they find.

- `signals`: POS, CHROM and GREEN as differentiable torch functions of a skin-mean RGB trace;
  `measure` reads a heart rate and the spectrum's peak SNR from any pulse signal.
- `networks`: the pretrained networks shipped in `open-rppg` (PhysNet, ...), measurement only.
- `skin`: forehead and cheek polygons from the 5 landmarks.
- `edit`: the per-track offsets that scrub or retarget the pulse; `apply`: adds them to 8-bit frames.
"""

from faceveil.models.rppg.base import ESTIMATORS, Estimator, Reading, measure
from faceveil.models.rppg import signals, networks  # noqa: F401  (registers)


def create_estimator(name: str, **kwargs) -> Estimator:
    return ESTIMATORS.create(name, **kwargs)


__all__ = ["ESTIMATORS", "Estimator", "Reading", "measure", "create_estimator"]
