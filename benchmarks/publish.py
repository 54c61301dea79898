"""Identity replacement beside blur, mosaic and solid on ../shared/data/faces (a folder of photos per
person), in-process (the same anonymizers the flow's image task runs, on the largest face CenterFace
finds at its default threshold in each photo), calibrated on some people and reported on others.

The split: people sorted by name, alternately into a calibration half and a held-out half. Every number
tuned here is tuned on the calibration half only: the re-identification threshold (dlib cosine;
`faceveil.ops.calibrate.empirical_threshold`, search false-match rate <= 1 % over the calibration
originals), the grouping threshold that makes one person of several photos (the cosine at which 0.2 %
of different-person pairs match, how dlib's 0.92 was derived) and the replace identity margin (of
`--margins`, the largest whose replaced calibration faces are re-identified at most 1 %, tried largest
first). Re-identification is then reported on both halves side by side: as the output face's cosine
to its own original, and as an attacker's search of all other photos' originals (rank 1 is the right
person and clears the threshold). Over all faces: share CenterFace still finds at 0.2; background PSNR
outside the masks; mean pose error (degrees; CenterFace's landmarks on the output against the
original's); mean skin ΔE2000; seconds per face; for replace the surrogate consistency (replace: one
surrogate per person, grouped per half as `faceveil publish` does; replace-per-face: one per face):
over pairs of photos of one person, the share of other people's surrogates farther from the first
surrogate than the second is (0.5 = none).

Realism (faceveil/validation/realism.py), on the held-out faces: the Fréchet distance of each method's
faces to the calibration half's originals (real faces of other people: against their own originals
the distance would count the identity change as unrealism) in two spaces, dlib's 128-d descriptors
and CenterFace's 320-d backbone features; the held-out originals give the floor (real against real,
the same number of faces); and the per-face sharpness ratio (median, share below 0.25). A contact
sheet of replaced held-out faces (never an original) goes to `--sheet`.

    .venv/bin/python benchmarks/publish.py [--people N] [--methods replace,blur,mosaic,solid]
                                           [--margins 0.85,0.80] [--sheet OUT.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from common import shared_data
from faceveil.validation.image_quality import masked_psnr

TARGETS = {"reid": 0.01, "seconds": 3.0, "detected": 0.95, "pose": 5.0, "delta_e": 5.0, "filled": 0.10}
# detected, pose and delta_e are over the faces with a face put back (a "solid" one shows none); "filled": the
# share of held-out faces the fallback chain ended "solid" (bounded: filling every face would pass the others trivially)
GROUP_FMR = 0.002  # different-person pairs a grouping threshold lets match


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=None, help="only the first N people (sorted by name)")
    ap.add_argument("--photos", type=int, default=None, help="at most N photos per person")
    ap.add_argument(
        "--methods",
        default="replace,blur,mosaic,solid",
        help="of: replace (one surrogate per person, as `faceveil publish` does), replace-per-face "
        "(`--per-face`), blur, mosaic, solid",
    )
    ap.add_argument(
        "--margins",
        default="0.85,0.80",
        help="identity margins replace's is calibrated from: the largest that passes on the calibration half",
    )
    ap.add_argument(
        "--sheet",
        default=str(Path(tempfile.gettempdir()) / "faceveil-publish-sheet.png"),
        help="contact sheet of replaced held-out faces (PNG)",
    )
    args = ap.parse_args()
    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.validation.realism import DetectorFeatures

    ctx = {"finder": create_detector("centerface", DetectorSettings(threshold=0.05)), "features": DetectorFeatures()}
    photos = load_photos(args.people, args.photos, ctx)
    people = sorted({p["person"] for p in photos})
    held = np.array([people.index(p["person"]) % 2 == 1 for p in photos])
    ctx.update(calibrate(photos, held))
    results, margin = {}, None
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if method.startswith("replace") and margin is None:
            margins = [float(m) for m in args.margins.split(",")]
            margin, results[method] = calibrated_replace(method, photos, held, ctx, margins)
        else:
            results[method] = run_method(method, photos, ctx, margin)
    print_tables(photos, held, results, margin, ctx)
    if "replace" in results or "replace-per-face" in results:
        write_sheet(args.sheet, held, results.get("replace") or results["replace-per-face"])


def load_photos(n_people, n_photos, ctx) -> list[dict]:
    """One dict per photo with a face: person, path, rgb, dets (its largest face), original dlib vector,
    CenterFace features and sharpness ratio."""
    from faceveil.models.detectors import create_detector
    from faceveil.models.embedders import create_embedder
    from faceveil.storage.media import read_image
    from faceveil.validation.realism import sharpness_ratio

    detector, ctx["embedder"] = create_detector("centerface"), create_embedder("dlib-resnet")
    photos = []
    for person in sorted(p for p in (shared_data() / "faces").iterdir() if p.is_dir())[:n_people]:
        for path in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n_photos]:
            rgb = read_image(str(path))[0]
            dets = detector.detect(rgb)
            if len(dets):
                dets = dets[
                    np.argsort(-(dets.boxes[:, 2] - dets.boxes[:, 0]))[:1]
                ]  # the photo's person: its largest face
                dets.track_ids = np.zeros(1, np.int64)
                photos.append(
                    {
                        "person": person.name,
                        "path": path,
                        "rgb": rgb,
                        "dets": dets,
                        "emb": ctx["embedder"].embed(rgb, dets)[0].astype(np.float64),
                        "feat": ctx["features"].features(rgb, dets.boxes)[0],
                        "sharp": sharpness_ratio(rgb, dets.landmarks[0]),
                    }
                )
    return photos


def calibrate(photos, held) -> dict:
    """The re-identification and grouping thresholds from the calibration half's originals, printed with
    the false-match rates they give on both halves."""
    from faceveil.ops.calibrate import empirical_threshold

    v, labels = np.vstack([p["emb"] for p in photos]).astype(np.float64), np.array([p["person"] for p in photos])
    cal = ~held
    threshold = empirical_threshold(v[cal], labels[cal], 0.01)  # the attacker's: no margin for unseen people
    other = labels[:, None] != labels[None, :]
    sims = v @ v.T
    pairs = lambda m: sims[np.ix_(m, m)][np.triu(other[np.ix_(m, m)], 1)]  # noqa: E731  different-person pairs
    grouping = float(np.quantile(pairs(cal), 1 - GROUP_FMR))

    def search_fmr(m):  # probes of half m whose best wrong match among half m clears the threshold
        return float((np.where(other[np.ix_(m, m)], sims[np.ix_(m, m)], -1).max(1) >= threshold).mean())

    print(
        f"{len(set(labels))} people, {len(photos)} photos with a face; calibration half {len(set(labels[cal]))} people "
        f"({cal.sum()} photos), held-out half {len(set(labels[held]))} people ({held.sum()} photos)"
    )
    print(
        f"re-identification threshold (dlib cosine, calibrated): {threshold:.3f}; search false-match rate "
        f"{search_fmr(cal):.1%} on the calibration originals, {search_fmr(held):.1%} on the held-out ones"
    )
    print(
        f"grouping threshold (calibrated, {GROUP_FMR:.1%} of different-person pairs): {grouping:.3f} (dlib's default "
        f"0.92); pair false-match rate on the held-out originals {(pairs(held) >= grouping).mean():.2%}"
    )
    return {"threshold": threshold, "grouping": grouping, "gallery": v, "labels": labels}


def calibrated_replace(method, photos, held, ctx, margins) -> tuple[float, list]:
    """(margin, per-photo results): `method` (replace or replace-per-face) on the calibration half with
    each margin, largest first, until one keeps re-identification there within the target; then the
    held-out half with it."""
    cal = [i for i in range(len(photos)) if not held[i]]
    for k, margin in enumerate(sorted(margins, reverse=True)):
        rows = run_method(method, [photos[i] for i in cal], ctx, margin, offset=cal)
        reid = np.mean([r["own"] or r["search"] for r in rows])
        print(f"{method}, identity margin {margin:.2f}: {reid:.1%} of the calibration faces re-identified")
        if reid <= TARGETS["reid"] or k == len(margins) - 1:
            break
    print(f"{method}: identity margin {margin:.2f} (calibrated; the default is 0.85)")
    out = dict(zip(cal, rows))
    idx = [i for i in range(len(photos)) if held[i]]
    out.update(zip(idx, run_method(method, [photos[i] for i in idx], ctx, margin, offset=idx)))
    return margin, [out[i] for i in range(len(photos))]


def run_method(method, photos, ctx, margin=None, offset=None) -> list[dict]:
    """Per photo: the method's output measured (see `measure`). Replace runs once per call: a call is
    one publication (people grouped within it)."""
    from faceveil.models.anonymizers import MaskSettings, create_anonymizer
    from faceveil.validation.realism import face_crop

    anon = create_anonymizer(method.split("-")[0], MaskSettings())
    if method.startswith("replace"):
        if margin is not None:
            anon.settings = dataclasses.replace(anon.settings, id_margin=margin)
        t0 = time.perf_counter()
        anon.load()
        print(f"{method}: models and pool ready in {time.perf_counter() - t0:.1f} s")
    people_s, charged = person_surrogates(anon, photos, ctx["grouping"]) if method == "replace" else ({}, {})
    offset = list(range(len(photos))) if offset is None else offset
    rows = []
    for i, p in enumerate(photos):
        out, media = p["rgb"].copy(), f"{p['person']}/{p['path'].name}"
        t0, c0 = time.perf_counter(), time.process_time()
        if method.startswith("replace"):
            if i in people_s:
                anon.expect(media, [(p["dets"].boxes[0], people_s[i])])
            anon.apply(out, p["dets"], media=media)
        else:
            anon.apply(out, p["dets"])
        seconds = (
            time.perf_counter() - t0 + charged.get(i, (0.0, 0.0))[0]
        )  # a person's surrogate: charged to their best face
        cpu = (
            time.process_time() - c0 + charged.get(i, (0.0, 0.0))[1]
        )  # CPU time of all threads: less moved by others' load
        crop = (
            face_crop(out, p["dets"].boxes[0], 128) if method.startswith("replace") else None
        )  # for the contact sheet
        made = anon.surrogates(media).get(0) if method.startswith("replace") else None
        rows.append(
            {
                **measure(out, p, offset[i], ctx, anon),
                "seconds": seconds,
                "cpu": cpu,
                "crop": crop,
                "method": getattr(made, "method", method),
            }
        )  # the fallback chain's step that made it
    return rows


def measure(out, p, index, ctx, anon) -> dict:
    """One output face against its original: re-identified (own, search), still found, pose error,
    ΔE, background PSNR, its dlib vector and CenterFace features, its sharpness ratio."""
    from faceveil.models.detections import iou_matrix
    from faceveil.models.face_attributes import delta_e2000, head_pose, skin_lab
    from faceveil.validation.realism import sharpness_ratio

    rgb, dets, lm = p["rgb"], p["dets"], p["dets"].landmarks[0]
    e = ctx["embedder"].embed(out, dets)[0].astype(np.float64)
    gallery, labels, thr = ctx["gallery"], ctx["labels"], ctx["threshold"]
    others = np.array([j for j in range(len(gallery)) if j != index])
    sims = gallery[others] @ e
    k = int(np.argmax(sims))
    f, (x0, y0) = _window_detect(ctx["finder"], out, dets.boxes[0])
    iou = iou_matrix(dets.boxes - [x0, y0, x0, y0], f.boxes) if len(f) else np.zeros((1, 0))
    j = int(np.argmax(iou[0])) if iou.shape[1] else -1
    hit = j >= 0 and iou[0, j] >= 0.3
    pose = de = float("nan")
    if hit and not np.isnan(f.landmarks[j]).any() and not np.isnan(lm).any():
        pose = float(np.abs(head_pose(f.landmarks[j] + [x0, y0]) - head_pose(lm)).mean())
    if not np.isnan(lm).any():
        de = float(delta_e2000(skin_lab(out, lm), skin_lab(rgb, lm)))
    mask, regions = np.ones(rgb.shape[:2], bool), anon.regions(dets, rgb.shape[1], rgb.shape[0])
    for x1, y1, x2, y2 in regions:
        mask[y1:y2, x1:x2] = False
    return {
        "own": float(e @ p["emb"]) >= thr,
        "search": labels[others[k]] == p["person"] and sims[k] >= thr,
        "found": bool(hit and f.scores[j] >= 0.2),
        "pose": pose,
        "de": de,
        "emb": e,
        "psnr": min(99.0, masked_psnr(out, rgb, mask)) if mask.any() else 99.0,
        "feat": ctx["features"].features(out, dets.boxes)[0],
        "sharp": sharpness_ratio(out, lm, None if anon.name == "replace" else regions[0]),
    }  # replace keeps the ring


def _window_detect(detector, rgb, box, context: float = 3.0):
    """(detections, window origin): the detector run on a window `context` times the box around it
    (what else the photo holds cannot change whether this face is found; big photos cost less)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = box
    r = context * max(x2 - x1, y2 - y1) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = int(max(0, cx - r)), int(max(0, cy - r))
    return detector.detect(np.ascontiguousarray(rgb[y0 : int(min(h, cy + r)), x0 : int(min(w, cx + r))])), (x0, y0)


def person_surrogates(anon, photos, grouping: float) -> tuple[dict, dict]:
    """({photo: its person's surrogate}, {photo: (seconds, CPU seconds)}) for the people in more than one photo
    (grouped by the original embeddings at `grouping`, as `faceveil publish` does: models/people), each
    surrogate made from the person's best face, and the time it took charged to that photo."""
    from faceveil.models.embedders.base import quality
    from faceveil.models.people import shared_people
    from faceveil.models.replace import track_seed

    vectors = np.vstack([p["emb"] for p in photos])
    q = np.array([quality(p["rgb"], p["dets"])[0] for p in photos])
    labels, means, best = shared_people(vectors, q, grouping)
    out, charged = {}, {}
    for person, i in best.items():
        t0, c0 = time.perf_counter(), time.process_time()
        dets = photos[i]["dets"]
        s = anon.person_surrogate(
            photos[i]["rgb"], dets.boxes[0], dets.landmarks[0], vectors[i], means, track_seed(0, "person", i)
        )
        charged[i] = (time.perf_counter() - t0, time.process_time() - c0)
        out.update({j: s for j in np.flatnonzero(labels == person)})
    print(
        f"replace: {labels.max() + 1} people among {len(photos)} faces (labels agree with the folders on "
        f"{agreement(labels, [p['person'] for p in photos]):.1%} of face pairs); {len(best)} people share a surrogate"
    )
    return out, charged


def agreement(labels, names) -> float:
    """Share of face pairs on which grouping and the folders agree (same person or not)."""
    n, same = len(labels), 0
    pairs = n * (n - 1) // 2
    for a in range(n):
        for b in range(a + 1, n):
            same += (labels[a] == labels[b]) == (names[a] == names[b])
    return same / pairs if pairs else float("nan")


def consistency(rows, labels) -> float:
    """Over pairs of photos of one person: the share of other people's surrogates farther from the
    first surrogate than the second is."""
    v = np.vstack([r["emb"] for r in rows])
    sims, better = v @ v.T, []
    for a in range(len(v)):
        for b in range(len(v)):
            if a != b and labels[a] == labels[b] and (labels != labels[a]).any():
                better.append(float((sims[a, labels != labels[a]] < sims[a, b]).mean()))
    return float(np.mean(better)) if better else float("nan")


def _mean(rows, key, idx=None) -> float:
    vals = np.array([r[key] for i, r in enumerate(rows) if idx is None or idx[i]], np.float64)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if len(vals) else float("nan")


def print_tables(photos, held, results, margin, ctx) -> None:
    """The privacy/utility table (re-identification on both halves), the realism table (held-out) and
    replace against the targets."""
    labels, cal = ctx["labels"], ~held
    print(
        "\n| method | margin | re-id own, calibration | re-id own, held-out | re-id search, calibration | re-id search, "
        "held-out | still detected (0.2) | background PSNR dB | pose error deg | skin dE2000 | s per face | surrogate consistency |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m, rows in results.items():
        c = consistency(rows, labels) if m.startswith("replace") else float("nan")
        print(
            f"| {m} | {f'{margin:.2f}' if m.startswith('replace') else '-'} | {_mean(rows, 'own', cal):.1%} | "
            f"{_mean(rows, 'own', held):.1%} | {_mean(rows, 'search', cal):.1%} | {_mean(rows, 'search', held):.1%} | "
            f"{_mean(rows, 'found'):.1%} | {_mean(rows, 'psnr'):.1f} | {_mean(rows, 'pose'):.1f} | {_mean(rows, 'de'):.1f} | "
            f"{_mean(rows, 'seconds'):.2f} | {'-' if np.isnan(c) else f'{c:.1%}'} |"
        )
    for m, rows in results.items():
        if m.startswith("replace"):
            for half, idx in (("calibration", cal), ("held-out", held)):
                steps = [r["method"] for r, h in zip(rows, idx) if h]
                print(
                    f"{m}, {half} half: faces per step of the fallback chain: "
                    + ", ".join(f"{k} {steps.count(k)}" for k in dict.fromkeys(steps))
                    + f"; {_mean(rows, 'seconds', idx):.2f} s ({_mean(rows, 'cpu', idx):.2f} CPU s) per face"
                )
    print_realism(photos, held, results)
    if "replace" in results:
        r = results["replace"]
        shown = np.array([x["method"] != "solid" for x in r])
        got = {
            "reid": max(_mean(r, "own", held), _mean(r, "search", held)),
            "seconds": _mean(r, "seconds"),
            "detected": _mean(r, "found", shown),
            "pose": _mean(r, "pose", shown),
            "delta_e": _mean(r, "de", shown),
            "filled": float(1 - shown[held].mean()),
        }
        ok = {k: got[k] >= v if k == "detected" else got[k] <= v for k, v in TARGETS.items()}
        print(
            "\nreplace against the targets: "
            + "; ".join(
                f"{k} {got[k]:.3g} ({'>=' if k == 'detected' else '<='} {TARGETS[k]}: {'ok' if ok[k] else 'MISSED'})"
                for k in TARGETS
            )
            + " (re-identification and the filled share on the held-out people)"
        )


def print_realism(photos, held, results) -> None:
    """Fréchet distances of the held-out faces (originals: the floor; each method's) to the calibration
    originals in both spaces, and their sharpness ratios."""
    from faceveil.validation.realism import SOFT_BELOW, frechet_distance, sharpness_summary

    ref = lambda key: np.vstack([p[key] for p, h in zip(photos, held) if not h])  # noqa: E731  calibration originals
    sets = {"real (held-out originals)": [p for p, h in zip(photos, held) if h]}
    sets.update({m: [r for r, h in zip(rows, held) if h] for m, rows in results.items()})
    print(
        f"\nRealism of the {held.sum()} held-out faces against the {(~held).sum()} calibration originals (other people):"
    )
    print(f"| faces | FD, dlib 128-d | FD, CenterFace 320-d | sharpness ratio, median | sharpness < {SOFT_BELOW} |")
    print("|---|---|---|---|---|")
    for name, rows in sets.items():
        s = sharpness_summary([r["sharp"] for r in rows])
        fd = [frechet_distance(np.vstack([r[k] for r in rows]), ref(k)) for k in ("emb", "feat")]
        print(f"| {name} | {fd[0]:.3f} | {fd[1]:.1f} | {s['median']:.2f} | {s['soft_share']:.1%} |")


def write_sheet(path, held, rows, faces: int = 24) -> None:
    """A contact sheet of replaced held-out faces as put back (never an original)."""
    from faceveil.validation.datasheet import contact_sheet

    crops = [r["crop"] for r, h in zip(rows, held) if h][:faces]
    png = contact_sheet(crops, faces)
    if png:
        Path(path).write_bytes(png)
        print(f"\ncontact sheet of {len(crops)} replaced held-out faces: {path}")


if __name__ == "__main__":
    main()
