"""The identity index of an archive: tracks' templates, protected with the key, into LanceDB; search
by a probe photo; calibration of the match threshold on labelled photos."""
from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from faceveil.models.cancelable import projection, protect
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location


def index_matrix(master: MasterKey, dim: int) -> np.ndarray:
    """The secret orthogonal matrix of the archive's cancelable templates."""
    return projection(master.derive("index/projection"), dim)


def index_templates(dest: Location, results, matrix: np.ndarray, embedder_name: str, key_fingerprint: str) -> int:
    """Writes the templates of every media in `results` (replacing that media's rows: re-runs never
    duplicate); returns the rows written."""
    from faceveil.storage.identity_index import IdentityIndex, templates_schema
    from faceveil.tasks.common import embedder

    emb = embedder(embedder_name)
    index = IdentityIndex(dest, dim=emb.dim)
    n = 0
    for res in results:
        if not res.templates:
            continue
        mid, rel = res.row["media_id"], res.row["rel_path"]
        vecs = protect(np.stack([t["vector"] for t in res.templates]), matrix)
        counts: dict[tuple, int] = {}
        rows = []
        for t, v in zip(res.templates, vecs):
            c = counts[(t["track_id"], t["kind"])] = counts.get((t["track_id"], t["kind"]), -1) + 1
            rows.append({"row_id": f"{mid}:{t['track_id']}:{t['kind']}{c}", "media_id": mid, "rel_path": rel,
                         "camera": posixpath.dirname(rel), "track_id": t["track_id"], "kind": t["kind"],
                         "first_frame": t["first_frame"], "last_frame": t["last_frame"],
                         "t_start_s": t["t_start_s"], "t_end_s": t["t_end_s"], "boxes_json": t["boxes_json"],
                         "vault_key_ids": t["vault_key_ids"], "embedder": emb.name, "quality": t["quality"],
                         "vector": v.astype(np.float32)})
        index.replace_media(mid, pa.Table.from_pylist(rows, schema=templates_schema(emb.dim)))
        n += len(rows)
    index.build_ann_index()  # only once the table is large; exact search below that
    meta = index.meta() or {}
    if "threshold" not in meta:
        index.write_meta({"embedder": emb.name, "embedder_weights": emb.weights_id, "dim": emb.dim,
                          "threshold": emb.same_person_threshold, "calibrated": False,
                          "key_fingerprint": key_fingerprint})
    return n


class ProbeError(ValueError):
    """A probe photo that cannot be searched with: no face, several faces, unreadable."""


def probe_vector(path: str, embedder_name: str, face: int | None = None) -> tuple[np.ndarray, str]:
    """(plain unit embedding of the probe's face, SHA-256 of the photo). Several faces need `face`."""
    from faceveil.storage.media import MediaError, read_image
    from faceveil.tasks.common import detector, embedder
    from faceveil.models.detectors import DetectorSettings

    try:
        rgb, _ = read_image(path)
    except MediaError as e:
        raise ProbeError(f"{path}: {e.reason}") from None
    dets = detector("centerface", DetectorSettings(threshold=0.5)).detect(rgb)
    if not len(dets):
        raise ProbeError(f"{path}: no face found in the probe photo")
    order = [int(j) for j in np.argsort(-dets.sizes)]
    order = [j for n, j in enumerate(order)  # a box mostly inside a larger one is the same face found twice
             if all(_inside(dets.boxes[j], dets.boxes[i]) < 0.4 for i in order[:n])]
    if face is None and len(order) > 1:
        listed = "; ".join(f"{i}: box {[int(v) for v in dets.boxes[j]]}" for i, j in enumerate(order))
        raise ProbeError(f"{path}: {len(order)} faces in the probe photo; choose one with --face N ({listed})")
    if not 0 <= (face or 0) < len(order):
        raise ProbeError(f"{path}: --face {face} but the photo has {len(order)} face(s)")
    j = order[face or 0]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return embedder(embedder_name).embed(rgb, dets[[int(j)]])[0], digest


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """The share of box a's area that lies inside box b."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)


@dataclass
class Match:
    media_id: str
    rel_path: str
    camera: str
    track_id: int
    score: float
    first_frame: int
    last_frame: int
    t_start_s: float
    t_end_s: float

    @property
    def ref(self) -> str:
        return f"{self.media_id}:{self.track_id}"


def search_tracks(dest: Location, master: MasterKey, vector: np.ndarray, top: int = 10,
                  threshold: float | None = None) -> tuple[list[Match], float]:
    """Tracks whose template or an exemplar scores at or above the threshold (calibrated one by
    default), best first, one entry per track; never a best guess below it."""
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=len(vector))
    meta = index.meta() or {}
    cut = float(threshold if threshold is not None else meta.get("threshold", 0.92))
    q = protect(vector[None], index_matrix(master, len(vector)))[0]
    best: dict[tuple, Match] = {}
    for r in index.search(q, k=max(50, 8 * top)):
        if r["score"] < cut:
            continue
        key = (r["media_id"], r["track_id"])
        if key not in best or r["score"] > best[key].score:
            best[key] = Match(r["media_id"], r["rel_path"], r["camera"], int(r["track_id"]), float(r["score"]),
                              int(r["first_frame"]), int(r["last_frame"]), float(r["t_start_s"]), float(r["t_end_s"]))
    return sorted(best.values(), key=lambda m: -m.score)[:top], cut


def find_by_probe(dest: Location, master: MasterKey, photo: str, face: int | None = None,
                  top: int = 10) -> tuple[list[Match], float, str]:
    """(matching tracks, threshold used, probe SHA-256) for one photo: the key checked first, the
    probe embedded with the embedder the index was built with."""
    from faceveil.storage.identity_index import IdentityIndex
    from faceveil.storage.vault import check_key

    check_key(dest, master.fingerprint)
    name = (IdentityIndex(dest).meta() or {}).get("embedder", "dlib-resnet")
    vector, digest = probe_vector(photo, name, face)
    matches, cut = search_tracks(dest, master, vector, top)
    return matches, cut, digest


def search_threshold(vectors: np.ndarray, labels, target_fmr: float = 0.01) -> dict:
    """The match threshold at which at most `target_fmr` of searches (each unit vector as a probe
    against everyone else's) return someone else, with the figures at it (tmr: probes whose best
    same-person match clears it)."""
    v, ids = np.asarray(vectors, np.float64), np.asarray(labels)
    sims = v @ v.T
    other = ids[:, None] != ids[None, :]
    same = ~other & ~np.eye(len(ids), dtype=bool)
    # a search is a false match when the probe's best wrong match clears the threshold: calibrate on that
    worst = np.sort(np.where(other, sims, -1).max(1))[::-1]
    k = int(np.floor(target_fmr * len(worst)))
    threshold = float(np.nextafter(np.float32(worst[k]), np.float32(2))) if k < len(worst) else float(worst[-1])
    best_same = np.where(same, sims, -1).max(1)[same.any(1)]
    return {"threshold": threshold, "fmr": float((worst >= threshold).mean()),
            "pair_fmr": float((sims[other] >= threshold).mean()), "tmr": float((best_same >= threshold).mean()),
            "target_fmr": target_fmr, "photos": len(ids), "identities": len(set(ids)), "calibrated": True}


def calibrate(dest: Location, labelled: str, target_fmr: float = 0.01, embedder_name: str = "dlib-resnet") -> dict:
    """Picks the match threshold from labelled photos (one folder per person: the largest face of
    each photo) so that at most `target_fmr` of searches (each photo as a probe against everyone
    else's) return someone else; stores it with the index. Returns the figures (tmr: probes whose
    best same-person match clears it)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from faceveil.storage.identity_index import IdentityIndex

    if not 0 < target_fmr < 1:
        raise ValueError("target false-match rate must be in (0, 1)")
    root = Path(labelled)
    people = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(people) < 2:
        raise ValueError(f"{labelled}: needs a folder per person, at least two people")
    vecs, ids = [], []
    for person in people:
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            try:
                v, _ = probe_vector(str(photo), embedder_name, face=0)
            except ProbeError:
                continue
            vecs.append(v)
            ids.append(person.name)
    v, ids = np.array(vecs), np.array(ids)
    if len(set(ids)) < 2 or len(ids) <= len(set(ids)):
        raise ValueError(f"{labelled}: needs several photos of several people with faces")
    res = {**search_threshold(v, ids, target_fmr), "calibrated_on": str(root),
           "calibrated_at": datetime.now(timezone.utc).isoformat()}
    index = IdentityIndex(dest, dim=v.shape[1])
    index.write_meta({**(index.meta() or {}), **res})
    return res


def reproject_index(dest: Location, old: MasterKey, new: MasterKey, dim: int = 128) -> int:
    """Key rotation for the index: every stored template moves from the old key's projection to the
    new one's (the old table is cancelled). Returns the rows re-projected."""
    from faceveil.models.cancelable import reproject
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=dim)
    a, b = index_matrix(old, dim), index_matrix(new, dim)
    n = 0
    for mid in index.media_ids():
        t = index.media_rows(mid)
        if not t.num_rows:
            continue
        vecs = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
        moved = pa.FixedSizeListArray.from_arrays(pa.array(reproject(vecs, a, b).reshape(-1), pa.float32()), dim)
        index.replace_media(mid, t.set_column(t.schema.get_field_index("vector"), "vector", moved))
        n += t.num_rows
    if n:
        index.write_meta({"key_fingerprint": new.fingerprint})
    return n


def thumbnail(dest: Location, match: Match, out_dir: str, rank: int, scratch: str) -> str:
    """A JPEG of the match's face region as it is in the ANONYMIZED output (middle of the track, with
    context around it): what a searcher may see before anything is restored."""
    import os

    import cv2

    from faceveil.storage import manifests
    from faceveil.storage.media import iter_frames, probe_video, read_image

    det = manifests.read_part(dest, "detections", match.media_id).to_pandas()
    det = det[det.track_id == match.track_id].sort_values("frame_index")
    row = det.iloc[len(det) // 2]
    media = manifests.read_part(dest, "media", match.media_id).to_pylist()[0]
    with dest.local_file(media["output_path"], scratch) as local:
        if media["kind"] == "image":
            rgb, _ = read_image(local)
        else:
            f = int(row.frame_index)
            rgb = dict(iter_frames(local, probe_video(local), f, f + 1))[f]
    m = max(row.x2 - row.x1, row.y2 - row.y1)
    h, w = rgb.shape[:2]
    x1, y1 = int(max(0, row.x1 - m)), int(max(0, row.y1 - m))
    x2, y2 = int(min(w, row.x2 + m)), int(min(h, row.y2 + m))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{rank:02d}_{match.media_id}_{match.track_id}.jpg")
    cv2.imwrite(path, np.ascontiguousarray(rgb[y1:y2, x1:x2, ::-1]))
    return path
