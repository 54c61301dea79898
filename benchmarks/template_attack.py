"""Protected identity templates against a known-pair attack, on ../shared/data/faces.

Every photo of faces/ (21 identities, 101 photos) is embedded as the index does it (CenterFace's
largest face, dlib-resnet, unit-norm: `probe_vector`). For each template transform of
`faceveil.models.template_protection.TRANSFORMS` it prints:

(a) search top-1 with the key: each photo a probe (plain embedding, scored by the transform's own
    similarity, as the index search does) against the protected templates of all other photos
    (leave-one-out);
(b) the attacker: holds the stolen protected index of all photos plus N known (plain, protected)
    pairs under the same key (N = 64, 128, 512), and labelled public photos (the plain embeddings of
    the other photos). Known pairs come from people NOT in faces/: the ground-truth face boxes of
    detection/images/ (WIDER + dlib, 215 faces), each embedded as it is, mirrored, and with its box
    grown by 15 % and shifted (augmentations: 645 vectors), so they span the same descriptor space.
    Attacks, the best one reported: rotation: orthogonal Procrustes, then the stolen rows are mapped
    back to plain space; vectors/codes in general: least squares plain -> protected (a learned
    forward transform: public photos are protected by it and matched to the stolen rows with the
    transform's score) and least squares protected -> plain (a learned inverse: stolen rows mapped
    to plain space and matched by cosine); sealed bytes are fed to the same least squares as
    features (their bits, +-1). Each stolen row is re-identified by its best public match
    (leave-one-out); chance = 1/21 (and the top-1 of random scores, for the unequal class sizes).
(c) two archives of the same photos under two different keys: each row of one matched to the
    best row of the other (other photos only), as someone holding both without the keys would
    compare them (rotation: cosine; codes: the code score; sealed: cosine of the bytes' bits);
    the cross-key match rate against chance.
(d) within one key, no pairs: each stolen row matched to the other stolen rows the same way (can a
    holder of the index alone tell which tracks are the same person?).

  .venv/bin/python benchmarks/template_attack.py [--cache /tmp/template_attack.npz]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import shared_data  # noqa: E402
from faceveil.models.template_protection import DEFAULT, TRANSFORMS, OrthogonalRotation  # noqa: E402
from faceveil.storage.keys import MasterKey  # noqa: E402

NS = (64, 128, 512)


def embed_faces(data: Path) -> tuple[np.ndarray, np.ndarray]:
    from faceveil.ops.search import ProbeError, probe_vector

    vecs, ids = [], []
    for person in sorted(p for p in (data / "faces").iterdir() if p.is_dir()):
        for photo in sorted(person.glob("*.jpg")):
            try:
                v, _ = probe_vector(str(photo), "dlib-resnet", face=0)
            except ProbeError as e:
                print(f"  skipped {photo}: {e}")
                continue
            vecs.append(v)
            ids.append(person.name)
    return np.array(vecs, np.float32), np.array(ids)


def embed_known_pairs(data: Path) -> np.ndarray:
    """Faces of people outside faces/: every ground-truth box, as is, mirrored, and grown+shifted."""
    from faceveil.models.detections import Detections
    from faceveil.storage.media import read_image
    from faceveil.pipeline.toolkit import loaded_embedder as embedder

    emb = embedder("dlib-resnet")
    boxes: dict[str, list] = {}
    with open(data / "detection" / "annotations.csv") as f:
        for row in csv.DictReader(f):
            if row["invalid"] != "1":
                x, y, w, h = (float(row[k]) for k in "xywh")
                boxes.setdefault(row["image"], []).append([x, y, x + w, y + h])
    out = []
    for rel, bs in sorted(boxes.items()):
        rgb, _ = read_image(str(data / rel))
        b = np.array(bs, np.float32)
        W = rgb.shape[1]
        mirrored = np.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], 1)
        s = 0.075 * (b[:, 2:] - b[:, :2])
        grown = np.concatenate([b[:, :2] - s + 0.5 * s, b[:, 2:] + s + 0.5 * s], 1)
        for img, bb in ((rgb, b), (np.ascontiguousarray(rgb[:, ::-1]), mirrored), (rgb, grown)):
            out.append(emb.embed(img, Detections(bb, np.ones(len(bb)))))
    return np.concatenate(out).astype(np.float32)


def features(t, stored) -> np.ndarray:
    """Stored templates as a float matrix an attacker can regress on (sealed bytes: their bits, +-1)."""
    if t.stored_as == "sealed":
        bits = np.unpackbits(np.frombuffer(b"".join(stored), np.uint8).reshape(len(stored), -1), axis=1)
        return bits.astype(np.float32) * 2 - 1
    s = np.asarray(stored, np.float32)
    if t.name.startswith("iom"):  # index-of-max codes: one-hot per group
        q = int(s.max()) + 1 if s.size else 1
        return np.eye(max(q, 16), dtype=np.float32)[s.astype(int)].reshape(len(s), -1)
    return s


def top1(sims: np.ndarray, labels: np.ndarray) -> float:
    """Each row's best column (the diagonal excluded: leave-one-out) has the row's label."""
    s = np.array(sims, np.float64)
    np.fill_diagonal(s, -np.inf)
    return float((labels[s.argmax(1)] == labels).mean())


def score_matrix(t, queries: np.ndarray, stored, contexts) -> np.ndarray:
    return np.stack([t.scores(q, stored, contexts) for q in queries])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def lstsq(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Ridge least squares with a bias column: returns a function-ready (d+1, k) matrix."""
    xb = np.hstack([x, np.ones((len(x), 1), np.float32)]).astype(np.float64)
    a = xb.T @ xb + ridge * np.eye(xb.shape[1])
    return np.linalg.solve(a, xb.T @ y.astype(np.float64))


def apply(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1), np.float32)]) @ w


def attack(t, pairs_plain, pairs_stored, stolen, public, labels) -> tuple[float, str]:
    """The attacker's best leave-one-out top-1 re-identifying stolen rows with public photos."""
    best = (0.0, "")
    fp, fs = pairs_plain, features(t, pairs_stored)
    fst = features(t, stolen)
    if isinstance(t, OrthogonalRotation):  # orthogonal Procrustes: protected = plain @ R.T
        u, _, vt = np.linalg.svd(fs.T @ fp)
        r = u @ vt
        recovered = fst @ r
        best = max(best, (top1(_cos(recovered, public), labels), "procrustes"))
    inv = lstsq(fs, fp)  # learned inverse: protected -> plain
    best = max(best, (top1(_cos(apply(inv, fst), public), labels), "inverse lstsq"))
    fwd = lstsq(fp, fs)  # learned forward: plain -> protected
    pred = apply(fwd, public)
    if t.stored_as == "vector":
        if t.name.startswith("biohash"):
            pred = np.where(pred >= 0, 1.0, -1.0)
        elif t.name.startswith("iom"):
            g = pred.reshape(len(pred), -1, 16)
            pred = np.eye(16)[g.argmax(-1)].reshape(len(pred), -1)
    best = max(best, (top1(_cos(fst, pred), labels), "forward lstsq"))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", help="npz of the plain embeddings (computed and written when missing)")
    ap.add_argument("--transforms", nargs="*", default=sorted(TRANSFORMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="fresh keys (and known pairs) per transform; means printed")
    args = ap.parse_args()
    data = shared_data()
    t0 = time.time()
    if args.cache and Path(args.cache).is_file():
        z = np.load(args.cache, allow_pickle=False)
        x, labels, known = z["faces"], z["labels"], z["known"]
    else:
        x, labels = embed_faces(data)
        known = embed_known_pairs(data)
        if args.cache:
            np.savez(args.cache, faces=x, labels=labels, known=known)
    people = sorted(set(labels))
    chance = 1 / len(people)
    rng = np.random.default_rng(args.seed)
    rands = [top1(rng.standard_normal((len(x), len(x))), labels) for _ in range(200)]
    rand = float(np.mean(rands))
    print(
        f"faces/: {len(x)} photos of {len(people)} people; known-pair pool: {len(known)} faces of other people "
        f"(detection/ boxes, as is + mirrored + grown/shifted); embedded in {time.time() - t0:.0f} s"
    )
    print(f"chance: 1/{len(people)} = {chance:.3f} (random scores, leave-one-out: {rand:.3f})")
    plain = top1(x @ x.T, labels)
    print(f"plain embeddings (no protection): search top-1 {plain:.3f}\n")
    ctx = [f"faces:{i}:template0".encode() for i in range(len(x))]
    res: dict[str, float] = {}
    head = (
        f"{'transform':14s} {'search top-1':>12s} "
        + " ".join(f"{'attack N=' + str(n):>16s}" for n in NS)
        + f" {'cross-key':>10s} {'same-key':>9s}"
    )
    print(head)
    for name in args.transforms:
        cls = TRANSFORMS[name]
        runs = []
        for _ in range(args.repeats):  # fresh keys each time: figures are means over keys
            k1, k2 = MasterKey.generate(), MasterKey.generate()
            t, t2 = cls.from_key(k1, x.shape[1]), cls.from_key(k2, x.shape[1])
            stolen = t.protect(x, ctx)
            search = top1(score_matrix(t, x, stolen, ctx), labels)
            atk = []
            for n in NS:
                pick = rng.choice(len(known), n, replace=False)
                pctx = [f"known:{i}:template0".encode() for i in pick]
                atk.append(attack(t, known[pick], t.protect(known[pick], pctx), stolen, x, labels))
            fa, fb = features(t, stolen), features(t2, t2.protect(x, ctx))
            cross = top1(_cos(fb, fa), labels)  # codes: one-hot / +-1, so cosine is the code agreement
            same = top1(_cos(fa, fa), labels)
            runs.append((search, [a for a, _ in atk], cross, same, [m for _, m in atk]))
        search = float(np.mean([r[0] for r in runs]))
        atk = np.mean([r[1] for r in runs], 0)
        methods = [max(set(col), key=col.count) for col in zip(*[r[4] for r in runs])]
        cross, same = float(np.mean([r[2] for r in runs])), float(np.mean([r[3] for r in runs]))
        res[name] = search
        print(
            f"{name:14s} {search:12.3f} "
            + " ".join(f"{a:6.3f} ({m[:7]:>7s})" for a, m in zip(atk, methods))
            + f" {cross:10.3f} {same:9.3f}"
        )
    print(
        f"\nmeans over {args.repeats} keys. targets: search top-1 within 0.01 of rotation-v1's; attack and cross-key "
        f"at chance ({chance:.3f}; random scores {rand:.3f}, 95 % of single random-score runs at most "
        f"{np.quantile(rands, 0.95):.3f})."
    )
    from faceveil.models.template_protection import IndexTemplates

    keys = IndexTemplates(MasterKey.generate(), x.shape[1])
    many = np.resize(x, (100_000, x.shape[1]))
    ids = [f"m{i}:0:template0" for i in range(len(many))]
    t0 = time.perf_counter()
    sealed = keys.seal(many, ids)
    t1 = time.perf_counter()
    keys.open_rows(ids, sealed)
    t2 = time.perf_counter()
    print(f"sealed templates, 100,000 rows: sealed in {t1 - t0:.2f} s, opened (what a search does) in {t2 - t1:.2f} s")
    if "rotation-v1" in res and DEFAULT in res:
        print(
            f"the index uses {DEFAULT}: search top-1 {res[DEFAULT]:.3f} against {res['rotation-v1']:.3f} with the old "
            f"templates (change {100 * (res[DEFAULT] - res['rotation-v1']):+.1f} points)"
        )


if __name__ == "__main__":
    main()
