"""What a sample of checked faces says about the leak rate: its one-sided upper confidence bound."""

from __future__ import annotations

LEAK_CONFIDENCE = 0.95


def leak_upper_bound(leaks: int, faces: int, confidence: float = LEAK_CONFIDENCE) -> float:
    """The one-sided Clopper-Pearson upper bound of the per-face leak rate that `leaks` unmasked faces
    among `faces` checked support at `confidence` (1.0 when nothing was checked): with 0 of 100 faces,
    1 - 0.05 ** (1 / 100) = 2.95 %. It holds for faces like the checked ones (the checked frames are
    spread evenly over each media), not for faces the detectors of the gate never see."""
    if faces <= 0:
        return 1.0
    if leaks >= faces:
        return 1.0
    from scipy.special import betaincinv  # beta.ppf's own function, without scipy.stats' import (~0.7 s)

    return float(betaincinv(leaks + 1, faces - leaks, confidence))
