"""Identity replacement beside blur, mosaic and solid on ../shared/data/faces (a folder of photos per
person), in-process (the same anonymizers the flow's image task runs, on the faces CenterFace finds
at its default threshold): re-identification against the originals at the threshold calibrated on
the originals (dlib; `faceveil.ops.calibrate.search_threshold`, search false-match rate <= 1 %) both
as the output face's cosine to its own original and as an attacker's search of the other photos'
originals (rank 1 is the right person and clears the threshold); share of output faces CenterFace
still finds at 0.2; background PSNR outside the masks; mean pose error (degrees, CenterFace's
landmarks on the output against the original's); mean skin ΔE2000; seconds per face; and for replace
the surrogate consistency (replace: one surrogate per person, grouped as `faceveil publish` does;
replace-per-face: one per face): over pairs of photos of one person, the share of other people's
surrogates that are farther from the first surrogate than the second is (0.5 = no consistency).

    .venv/bin/python benchmarks/publish.py [--people N] [--methods replace,blur,mosaic,solid]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import shared_data
from faceveil.validation.image_quality import masked_psnr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=None, help="only the first N people (sorted by name)")
    ap.add_argument("--photos", type=int, default=None, help="at most N photos per person")
    ap.add_argument("--methods", default="replace,blur,mosaic,solid",
                    help="of: replace (one surrogate per person, as `faceveil publish` does), replace-per-face "
                         "(`--per-face`), blur, mosaic, solid")
    args = ap.parse_args()
    from faceveil.models.anonymizers import MaskSettings, create_anonymizer
    from faceveil.models.detections import iou_matrix
    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.models.embedders import create_embedder
    from faceveil.models.face_attributes import delta_e2000, head_pose, skin_lab
    from faceveil.ops.calibrate import search_threshold
    from faceveil.storage.media import read_image

    people = sorted(p for p in (shared_data() / "faces").iterdir() if p.is_dir())[:args.people]
    detector, finder = create_detector("centerface"), create_detector("centerface", DetectorSettings(threshold=0.05))
    embedder = create_embedder("dlib-resnet")
    photos = []  # (person, path, rgb, dets, original embeddings)
    for person in people:
        for path in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:args.photos]:
            rgb = read_image(str(path))[0]
            dets = detector.detect(rgb)
            if len(dets):
                dets = dets[np.argsort(-(dets.boxes[:, 2] - dets.boxes[:, 0]))[:1]]  # the photo's person: its largest face
                dets.track_ids = np.zeros(1, np.int64)
                photos.append((person.name, path, rgb, dets, embedder.embed(rgb, dets)))
    labels = np.array([p[0] for p in photos])
    gallery = np.vstack([p[4] for p in photos])
    threshold = float(search_threshold(gallery, labels, 0.01)["threshold"])
    print(f"{len(people)} people, {len(photos)} photos with a face; dlib threshold calibrated on the originals: {threshold:.3f}")
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        anon = create_anonymizer(method.split("-")[0], MaskSettings())
        if hasattr(anon, "load"):
            t0 = time.perf_counter()
            anon.load()
            print(f"{method}: models and pool ready in {time.perf_counter() - t0:.1f} s")
        own, search, found, psnr, pose, de, secs, outs = [], [], [], [], [], [], [], []
        people_s, charged = person_surrogates(anon, photos) if method == "replace" else ({}, {})
        for i, (person, path, rgb, dets, emb) in enumerate(photos):
            out = rgb.copy()
            t0 = time.perf_counter()
            if method.startswith("replace"):
                if i in people_s:
                    anon.expect(f"{person}/{path.name}", [(dets.boxes[0], people_s[i])])
                anon.apply(out, dets, media=f"{person}/{path.name}")
            else:
                anon.apply(out, dets)
            secs.append(time.perf_counter() - t0 + charged.get(i, 0.0))  # a person's surrogate: charged to their best face
            e = embedder.embed(out, dets)[0]
            outs.append(e)
            own.append(float(e @ emb[0]) >= threshold)
            others = np.array([j for j in range(len(photos)) if j != i])
            sims = gallery[others] @ e
            k = int(np.argmax(sims))
            search.append(labels[others[k]] == person and sims[k] >= threshold)
            f = finder.detect(out)
            iou = iou_matrix(dets.boxes, f.boxes) if len(f) else np.zeros((1, 0))
            k = int(np.argmax(iou[0])) if iou.shape[1] else -1
            hit = k >= 0 and iou[0, k] >= 0.3
            found.append(hit and f.scores[k] >= 0.2)
            lm = dets.landmarks[0]
            if hit and not np.isnan(f.landmarks[k]).any() and not np.isnan(lm).any():
                pose.append(float(np.abs(head_pose(f.landmarks[k]) - head_pose(lm)).mean()))
            if not np.isnan(lm).any():
                de.append(float(delta_e2000(skin_lab(out, lm), skin_lab(rgb, lm))))
            mask = np.ones(rgb.shape[:2], bool)
            for x1, y1, x2, y2 in anon.regions(dets, rgb.shape[1], rgb.shape[0]):
                mask[y1:y2, x1:x2] = False
            psnr.append(min(99.0, masked_psnr(out, rgb, mask)) if mask.any() else 99.0)
        consistency = float("nan")
        if method.startswith("replace"):
            v = np.vstack(outs)
            sims, better = v @ v.T, []
            for a in range(len(v)):
                for b in range(len(v)):
                    if a != b and labels[a] == labels[b]:
                        other = labels != labels[a]
                        if other.any():
                            better.append(float((sims[a, other] < sims[a, b]).mean()))
            consistency = float(np.mean(better)) if better else float("nan")
        rows.append((method, np.mean(own), np.mean(search), np.mean(found), np.mean(psnr),
                     np.mean(pose) if pose else float("nan"), np.mean(de) if de else float("nan"), np.mean(secs), consistency))
    print()
    print(f"| method | re-id own (cos >= {threshold:.3f}) | re-id search (rank 1) | still detected (0.2) | background PSNR dB "
          "| pose error deg | skin dE2000 | s per face | surrogate consistency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, o, s, f, p, pe, d, t, c in rows:
        print(f"| {m} | {100 * o:.1f} % | {100 * s:.1f} % | {100 * f:.1f} % | {p:.1f} | {pe:.1f} | {d:.1f} | {t:.2f} | "
              f"{'-' if np.isnan(c) else f'{100 * c:.1f} %'} |")


def person_surrogates(anon, photos) -> tuple[dict, dict]:
    """({photo: its person's surrogate}, {photo: seconds}) for the people in more than one photo
    (grouped by the original embeddings, as `faceveil publish` does: models/people), each surrogate
    made from the person's best face, and the time it took charged to that photo."""
    from faceveil.models.embedders.base import quality
    from faceveil.models.people import shared_people
    from faceveil.models.replace import track_seed

    vectors = np.vstack([p[4] for p in photos])
    q = np.array([quality(p[2], p[3])[0] for p in photos])
    labels, means, best = shared_people(vectors, q, 0.92)
    out, charged = {}, {}
    for person, i in best.items():
        t0 = time.perf_counter()
        rgb, dets = photos[i][2], photos[i][3]
        s = anon.person_surrogate(rgb, dets.boxes[0], dets.landmarks[0], vectors[i], means, track_seed(0, "person", i))
        charged[i] = time.perf_counter() - t0
        out.update({j: s for j in np.flatnonzero(labels == person)})
    print(f"replace: {labels.max() + 1} people among {len(photos)} faces (labels agree with the folders on "
          f"{agreement(labels, [p[0] for p in photos]):.1%} of face pairs); {len(best)} people share a surrogate")
    return out, charged


def agreement(labels, names) -> float:
    """Share of face pairs on which grouping and the folders agree (same person or not)."""
    n, same = len(labels), 0
    pairs = n * (n - 1) // 2
    for a in range(n):
        for b in range(a + 1, n):
            same += (labels[a] == labels[b]) == (names[a] == names[b])
    return same / pairs if pairs else float("nan")


if __name__ == "__main__":
    main()
