"""Search that finds the right person, measured leave-one-out on ../shared/data/faces (one folder per
person): every photo with a face is a probe, once against an archive of all the other photos (top-1:
is the best match the same person?) and once against the archive with its person removed (a false
match: anything at or above the threshold). The threshold is the one `faceveil calibrate` picks for a
1 % false-match rate, taken two ways: on the whole set (what a user who calibrates on their own
labelled photos gets; optimistic), and by 2-fold cross-validation over people (calibrated on half of
the people, measured on the other half; the honest figure). Probes are embedded as `search` embeds
them (largest face, CenterFace at 0.5, dlib ResNet); variants: dlib's jittered descriptors
(`--jitters N`) and the mean of the photo and its mirror image (`--flip`). Sealed templates keep
the plain cosines, so the figures hold before and after the template change.

    .venv/bin/python benchmarks/search.py [--jitters 0] [--flip] [--folds 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import shared_data

TARGET_TOP1, TARGET_FMR = 0.98, 0.01


def embed_all(root: Path, jitters: int, flip: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(unit vectors, person per vector, photos without a face)."""
    from faceveil.models.detectors import DetectorSettings
    from faceveil.models.embedders.dlib_resnet import DlibResNet
    from faceveil.storage.media import read_image
    from faceveil.tasks.common import detector
    from faceveil.tasks.index import ProbeError, probe_vector

    emb = DlibResNet(jitters=jitters) if (jitters or flip) else None
    det = detector("centerface", DetectorSettings(threshold=0.5))
    vecs, ids, missing = [], [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            try:
                v, _ = probe_vector(str(photo), "dlib-resnet", face=0)
            except ProbeError:
                missing.append(str(photo.relative_to(root)))
                continue
            if emb is not None:  # the same face, embedded the variant's way
                rgb, _ = read_image(str(photo))
                d = det.detect(rgb)
                j = int(np.argmax(d.sizes))
                v = emb.embed(rgb, d[[j]])[0]
                if flip:
                    mirrored = np.ascontiguousarray(rgb[:, ::-1])
                    m = d[[j]]
                    w = rgb.shape[1]
                    m.boxes = np.stack([w - m.boxes[:, 2], m.boxes[:, 1], w - m.boxes[:, 0], m.boxes[:, 3]], 1)
                    m.landmarks = m.landmarks.copy()
                    m.landmarks[..., 0] = w - m.landmarks[..., 0]
                    v = v + emb.embed(mirrored, m)[0]
                v = v / np.linalg.norm(v)
            vecs.append(v)
            ids.append(person.name)
    return np.asarray(vecs, np.float64), np.asarray(ids), missing


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jitters", type=int, default=0)
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from faceveil.tasks.index import search_threshold

    root = shared_data() / "faces"
    t0 = time.perf_counter()
    v, ids, missing = embed_all(root, args.jitters, args.flip)
    people = sorted(set(ids))
    variant = f"dlib-resnet, jitters {args.jitters}{', mirror-averaged' if args.flip else ''}"
    print(f"{len(v)} photos with a face of {len(people)} people embedded in {time.perf_counter() - t0:.1f} s "
          f"({variant}); no face found in {len(missing)}: {', '.join(missing) or '-'}")
    everyone = np.arange(len(v))
    cal = search_threshold(v, ids, TARGET_FMR)
    whole = leave_one_out(v, ids, cal["threshold"], everyone)
    default = leave_one_out(v, ids, 0.92, everyone)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(people)
    cv = []
    for k in range(args.folds):
        held = set(order[k::args.folds])
        train = np.array([i not in held for i in ids])
        t = search_threshold(v[train], ids[train], TARGET_FMR)["threshold"]
        # probes of the held-out people, searched against everyone else's photos
        cv.append((t, leave_one_out(v, ids, t, everyone[~train])))
    n = sum(r["probes"] for _, r in cv)
    cv_top1 = sum(r["top1"] * r["probes"] for _, r in cv) / max(n, 1)
    cv_fmr = sum(r["fmr"] * r["searches"] for _, r in cv) / max(sum(r["searches"] for _, r in cv), 1)
    print(f"\n{'threshold':40}{'value':>8}{'probes':>8}{'top-1':>8}{'FMR':>8}{'TMR':>8}")
    print(f"{'dlib same-person cut (default)':40}{0.92:>8.3f}{default['probes']:>8}{default['top1']:>8.3f}"
          f"{default['fmr']:>8.3f}{default['tmr']:>8.3f}")
    print(f"{'calibrated on the whole set (1% FMR)':40}{cal['threshold']:>8.3f}{whole['probes']:>8}"
          f"{whole['top1']:>8.3f}{whole['fmr']:>8.3f}{whole['tmr']:>8.3f}")
    for k, (t, r) in enumerate(cv):
        print(f"{f'cross-validated, fold {k + 1} (held-out people)':40}{t:>8.3f}{r['probes']:>8}{r['top1']:>8.3f}"
              f"{r['fmr']:>8.3f}{r['tmr']:>8.3f}")
    print()
    print(f"{'PASS' if whole['top1'] >= TARGET_TOP1 else 'FAIL'}  leave-one-out top-1 >= {TARGET_TOP1}: {whole['top1']:.3f}")
    print(f"{'PASS' if whole['fmr'] <= TARGET_FMR else 'FAIL'}  false-match rate <= {TARGET_FMR} at the calibrated "
          f"threshold: {whole['fmr']:.3f} (calibrated on the same photos)")
    print(f"{'PASS' if cv_fmr <= TARGET_FMR else 'FAIL'}  cross-validated false-match rate <= {TARGET_FMR}: "
          f"{cv_fmr:.3f} (top-1 {cv_top1:.3f})")


if __name__ == "__main__":
    main()
