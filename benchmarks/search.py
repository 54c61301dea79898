"""Search that finds the right person, measured leave-one-out on ../shared/data/faces (one folder per
person): every photo with a face is a probe, once against an archive of all the other photos (top-1:
is the best match the same person?) and once against the archive with its person removed (a false
match: anything at or above the threshold). The threshold is the one `faceveil calibrate` picks for a
1 % false-match rate, taken two ways: on the whole set (what a user who calibrates on their own
labelled photos gets; optimistic), and by 2-fold cross-validation over people (calibrated on half of
the people, measured on the other half; the honest figure). Probes are embedded as `search` embeds
them (largest face, CenterFace at 0.5, dlib ResNet), in both template views: "plain" (one view,
what indexes held before) and "mirror-mean" (the face averaged with its mirror image, what new
indexes hold). Sealed templates keep the plain cosines, so the figures hold before and after the
template change.

    .venv/bin/python benchmarks/search.py [--folds 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import shared_data

TARGET_TOP1, TARGET_FMR = 0.98, 0.01


def embed_all(root: Path) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """({template view: unit vectors}, person per vector, photos without a face): each photo's
    largest face embedded as `search` embeds a probe, the "plain" way (what indexes held before)
    and the "mirror-mean" way (what new indexes hold)."""
    from faceveil.models.track_templates import TEMPLATE_VIEWS
    from faceveil.ops.search import ProbeError, probe_vector

    vecs: dict[str, list] = {v: [] for v in TEMPLATE_VIEWS}
    ids, missing = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            try:
                got = {view: probe_vector(str(photo), "dlib-resnet", face=0, view=view)[0] for view in vecs}
            except ProbeError:
                missing.append(str(photo.relative_to(root)))
                continue
            for view, v in got.items():
                vecs[view].append(v)
            ids.append(person.name)
    return {k: np.asarray(v, np.float64) for k, v in vecs.items()}, np.asarray(ids), missing


def leave_one_out(v: np.ndarray, ids: np.ndarray, threshold: float, probes: np.ndarray) -> dict:
    """Top-1 over probes whose person has another photo; false-match rate with the person removed."""
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    same = ids[:, None] == ids[None, :]
    has_other = (same & ~np.eye(len(ids), dtype=bool)).any(1)
    p = probes[has_other[probes]]
    best = sims[p].argmax(1)
    top1 = float((ids[best] == ids[p]).mean()) if len(p) else float("nan")
    wrong_best = np.where(same[probes], -np.inf, sims[probes]).max(1)
    right_best = np.where(same[p] & ~np.eye(len(ids), dtype=bool)[p], sims[p], -np.inf).max(1)
    return {"probes": len(p), "searches": len(probes), "top1": top1, "fmr": float((wrong_best >= threshold).mean()),
            "tmr": float((right_best >= threshold).mean()), "top1_above": float(((ids[best] == ids[p]) &
                                                                                  (sims[p].max(1) >= threshold)).mean())}


def evaluate(v: np.ndarray, ids: np.ndarray, folds: int, seed: int) -> dict:
    """Leave-one-out at dlib's cut, at the threshold calibrated on the whole set, and cross-validated."""
    from faceveil.ops.calibrate import search_threshold

    everyone = np.arange(len(v))
    cal = search_threshold(v, ids, TARGET_FMR)
    order = np.random.default_rng(seed).permutation(sorted(set(ids)))
    cv = []
    for k in range(folds):
        held = set(order[k::folds])
        train = np.array([i not in held for i in ids])
        t = search_threshold(v[train], ids[train], TARGET_FMR)["threshold"]
        cv.append((t, leave_one_out(v, ids, t, everyone[~train])))  # held-out people against everyone else
    n = sum(r["probes"] for _, r in cv)
    return {"default": leave_one_out(v, ids, 0.92, everyone), "threshold": cal["threshold"],
            "whole": leave_one_out(v, ids, cal["threshold"], everyone), "cv": cv,
            "cv_top1": sum(r["top1"] * r["probes"] for _, r in cv) / max(n, 1),
            "cv_fmr": sum(r["fmr"] * r["searches"] for _, r in cv) / max(sum(r["searches"] for _, r in cv), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    root = shared_data() / "faces"
    t0 = time.perf_counter()
    views, ids, missing = embed_all(root)
    print(f"{len(ids)} photos with a face of {len(set(ids))} people embedded in {time.perf_counter() - t0:.1f} s "
          f"(dlib-resnet, both template views); no face found in {len(missing)}: {', '.join(missing) or '-'}")
    print(f"\n{'view':13}{'threshold':36}{'value':>8}{'probes':>8}{'top-1':>8}{'FMR':>8}{'TMR':>8}")
    res = {}
    for view, v in views.items():
        r = res[view] = evaluate(v, ids, args.folds, args.seed)
        rows = [("dlib same-person cut", 0.92, r["default"]), ("calibrated on the whole set (1% FMR)",
                r["threshold"], r["whole"])] + [(f"cross-validated, fold {k + 1} (held out)", t, f)
                                                for k, (t, f) in enumerate(r["cv"])]
        for name, t, f in rows:
            print(f"{view:13}{name:36}{t:>8.3f}{f['probes']:>8}{f['top1']:>8.3f}{f['fmr']:>8.3f}{f['tmr']:>8.3f}")
        print(f"{view:13}{'cross-validated, both folds':36}{'':>8}{'':>8}{r['cv_top1']:>8.3f}{r['cv_fmr']:>8.3f}")
    print()
    for view, r in res.items():
        w = r["whole"]
        print(f"{'PASS' if w['top1'] >= TARGET_TOP1 else 'FAIL'}  {view}: leave-one-out top-1 >= {TARGET_TOP1}: {w['top1']:.3f}")
        print(f"{'PASS' if w['fmr'] <= TARGET_FMR else 'FAIL'}  {view}: false-match rate <= {TARGET_FMR} at the "
              f"calibrated threshold: {w['fmr']:.3f} (calibrated on the same photos)")
        print(f"{'PASS' if r['cv_fmr'] <= TARGET_FMR else 'FAIL'}  {view}: cross-validated false-match rate <= "
              f"{TARGET_FMR}: {r['cv_fmr']:.3f} (top-1 {r['cv_top1']:.3f})")


if __name__ == "__main__":
    main()
