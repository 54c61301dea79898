"""The edit checked against every region an attacker reads (regions.REGIONS: the whole face box, the
forehead, each cheek, the neck, faceveil's own mask), not only cell by cell. A region's mean is its
skin cells' means weighted by their share of its pixels plus its pixels that are not skin (eyes,
brows, hair, a collar), which the edit may not touch: as the head moves those pixels come and go and
put a heart-rate band into the region's mean that no cell's own scrub removes. `region_fix` measures
that band in each region after the cell edit (less the planted pulse) and moves the cells, frame by
frame, by the least offsets that cancel it in all regions at once (a ridge-regularised least-norm
solve over the cells, MAX_REGION_FIX grey levels at most per cell in all), a few rounds."""

from __future__ import annotations

from typing import Callable

import numpy as np

MAX_REGION_FIX = 4.0  # grey levels: the most a cell moves to clean a region
RIDGE = 1e-3  # of the mean diagonal of A A^T: keeps regions with little skin from asking for large moves
ROUNDS = 3
MIN_SKIN_SHARE = 0.5  # a region less than this much skin (a collar, a hood) is not chased: what the edit may
# touch of it is too little to cancel what moves in the rest


def region_fix(
    traces: np.ndarray,
    shares: np.ndarray,
    delta: np.ndarray,
    planted: np.ndarray,
    fps: float,
    band: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The cell offsets (T,K,3) `delta` corrected so that no region's mean keeps a band the edit did
    not plant. traces: (T,R,3) each region's mean RGB before the edit (NaN where unread); shares: (T,R,K)
    the share of each region's pixels in each cell (regions.cell_shares); planted: (T,3) the pulse the
    edit plants in every cell (zeros for scrub); band: a trace's (T,3; NaN rows filled) heart-rate band
    (edit.band_of)."""
    n, r = traces.shape[:2]
    ok = np.isfinite(traces).all(axis=2)  # (T,R)
    skin_share = np.nan_to_num(shares.sum(axis=2))  # (T,R)
    use = [i for i in range(r) if ok[:, i].sum() >= 2 * fps and np.median(skin_share[ok[:, i], i]) >= MIN_SKIN_SHARE]
    if not use or n < 2 * fps:
        return delta
    a = np.nan_to_num(shares[:, use].astype(np.float32))  # (T,U,K)
    gram = (a @ a.transpose(0, 2, 1)).astype(np.float64)
    diag = np.trace(gram, axis1=1, axis2=2) / len(use)
    gram += (RIDGE * np.maximum(diag, 1e-9))[:, None, None] * np.eye(len(use))
    skin = a.sum(axis=2)  # (T,U): the share of each region's pixels that is skin
    out = delta.copy()
    for _ in range(ROUNDS):
        after = traces[:, use] + np.einsum("tuk,tkc->tuc", a, np.nan_to_num(out))
        resid = np.zeros_like(after)
        for j, i in enumerate(use):
            x = np.where(ok[:, i, None], after[:, j], np.nan)
            resid[:, j] = np.where(ok[:, i, None], band(x) - skin[:, j, None] * planted, 0.0)
        fix = -np.einsum("tuk,tuc->tkc", a, np.linalg.solve(gram, resid).astype(np.float32))
        out = delta + np.clip(out + fix - delta, -MAX_REGION_FIX, MAX_REGION_FIX)
    return out
