"""The identity index of an archive: tracks' templates, protected with the key, into LanceDB; search
by a probe photo; calibration of the match threshold on labelled photos."""
from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from faceveil.models.cancelable import IndexTemplates, TemplateOpenError
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location

log = logging.getLogger(__name__)

def index_view(dest: Location) -> str:
    """How the archive's index embeds faces (models/track_templates): the one it was created with;
    an index from before views were recorded is "plain"; a new one gets the default."""
    from faceveil.models.track_templates import DEFAULT_VIEW
    from faceveil.storage.identity_index import IdentityIndex

    meta = IdentityIndex(dest).meta() or {}
    return meta.get("template_view", "plain" if meta else DEFAULT_VIEW)


def index_keys(master: MasterKey, dim: int) -> IndexTemplates:
    """The archive's template protection under `master` (sealed templates; see models/cancelable)."""
    return IndexTemplates(master, dim)


def _with_sealed(t: pa.Table, keys: IndexTemplates, plain: np.ndarray, dim: int) -> pa.Table:
    """Rows `t` holding the plain vectors `plain` sealed (bound to each row id), `vector` the placeholder."""
    from faceveil.storage.identity_index import check_vectors, placeholder, templates_schema

    ids = t.column("row_id").to_pylist()
    sealed = pa.array(keys.seal(check_vectors(plain, dim), ids), pa.binary())  # finite unit vectors only
    hold = pa.FixedSizeListArray.from_arrays(pa.array(np.tile(placeholder(dim), len(ids)), pa.float32()), dim)
    t = t.set_column(t.schema.get_field_index("vector"), "vector", hold)
    t = t.set_column(t.schema.get_field_index("sealed"), "sealed", sealed) if "sealed" in t.column_names \
        else t.append_column("sealed", sealed)
    return t.select(templates_schema(dim, sealed=True).names).cast(templates_schema(dim, sealed=True))


def _plain(t: pa.Table, keys: IndexTemplates, dim: int, skip_bad: bool = False) -> np.ndarray:
    """The plain vectors of stored rows (sealed opened, old rotated ones rotated back), in memory only;
    with `skip_bad`, rows that do not open are NaN."""
    sealed = t.column("sealed").to_pylist() if "sealed" in t.column_names else [None] * t.num_rows
    vecs = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32) if t.num_rows else None
    return keys.open_rows(t.column("row_id").to_pylist(), sealed, vecs, skip_bad=skip_bad)


def seal_old_rows(index, keys: IndexTemplates) -> int:
    """Rows an index written before sealed templates holds as rotated vectors, sealed under the same
    key (per media, each media in one commit: an interrupted run resumes). Returns rows sealed."""
    index.add_sealed_column()
    n = 0
    for mid in index.media_ids(unsealed=True):
        t = index.media_rows(mid)
        if not t.num_rows or not t.column("sealed").null_count:
            continue
        index.replace_media(mid, _with_sealed(t, keys, _plain(t, keys, index.dim), index.dim))
        n += t.num_rows
    return n


def index_templates(dest: Location, results, keys: IndexTemplates, embedder_name: str, key_fingerprint: str,
                    view: str) -> int:
    """Writes the templates of every media in `results` (embedded the `view` way), sealed with the
    key (replacing that media's rows: re-runs never duplicate); returns the rows written. Rows of an
    index written before with rotated templates are sealed too."""
    from faceveil.storage.identity_index import IdentityIndex, templates_schema
    from faceveil.tasks.common import embedder

    emb = embedder(embedder_name)
    if keys.dim != emb.dim:
        raise ValueError(f"index keys are for dim {keys.dim}, the embedder gives {emb.dim}")
    index = IdentityIndex(dest, dim=emb.dim)
    seal_old_rows(index, keys)
    n = 0
    for res in results:
        if not res.templates:
            continue
        mid, rel = res.row["media_id"], res.row["rel_path"]
        vecs = np.stack([t["vector"] for t in res.templates]).astype(np.float32)
        counts: dict[tuple, int] = {}
        rows = []
        for t, v in zip(res.templates, vecs):
            c = counts[(t["track_id"], t["kind"])] = counts.get((t["track_id"], t["kind"]), -1) + 1
            rows.append({"row_id": f"{mid}:{t['track_id']}:{t['kind']}{c}", "media_id": mid, "rel_path": rel,
                         "camera": posixpath.dirname(rel), "track_id": t["track_id"], "kind": t["kind"],
                         "first_frame": t["first_frame"], "last_frame": t["last_frame"],
                         "t_start_s": t["t_start_s"], "t_end_s": t["t_end_s"], "boxes_json": t["boxes_json"],
                         "vault_key_ids": t["vault_key_ids"], "embedder": emb.name, "quality": t["quality"],
                         "vector": v})
        plain = pa.Table.from_pylist(rows, schema=templates_schema(emb.dim))
        index.replace_media(mid, _with_sealed(plain, keys, vecs, emb.dim))
        n += len(rows)
    meta = index.meta() or {}
    fresh = {"template_transform": keys.name, "score": keys.score}
    if "threshold" not in meta:
        fresh.update({"embedder": emb.name, "embedder_weights": emb.weights_id, "dim": emb.dim, "template_view": view,
                      "threshold": emb.same_person_threshold, "calibrated": False, "key_fingerprint": key_fingerprint})
    if n or any(meta.get(k) != v for k, v in fresh.items()):
        index.write_meta(fresh)
    return n


class ProbeError(ValueError):
    """A probe photo that cannot be searched with: no face, several faces, unreadable."""


def probe_vector(path: str, embedder_name: str, face: int | None = None,
                 view: str = "mirror-mean") -> tuple[np.ndarray, str]:
    """(plain unit embedding of the probe's face, the `view` way; SHA-256 of the photo). Several
    faces need `face`."""
    from faceveil.models.track_templates import identity_vectors
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
    return identity_vectors(embedder(embedder_name), rgb, dets[[int(j)]], view)[0], digest


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
    keys = index_keys(master, len(vector))
    if index.sealed:  # sealed templates: opened here, in this process only, and scored exactly
        cols = ["row_id", "media_id", "rel_path", "camera", "track_id", "first_frame", "last_frame",
                "t_start_s", "t_end_s", "vector", "sealed"]
        t = index.rows(columns=cols)
        plain = _plain(t, keys, len(vector), skip_bad=True)
        bad = int(np.isnan(plain[:, 0]).sum()) if t.num_rows else 0
        if bad:  # another key's rows, or rows moved or edited: they match nothing (never a guess)
            log.warning("%d of %d identity templates do not open with this key (another key's, or moved "
                        "or edited rows): they cannot match", bad, t.num_rows)
        with np.errstate(invalid="ignore"):
            scores = plain @ (vector / max(float(np.linalg.norm(vector)), 1e-12)) if t.num_rows else np.zeros(0)
            keep = np.flatnonzero(scores >= cut)
        found = t.drop_columns(["vector", "sealed"]).take(pa.array(keep, pa.int64())).to_pylist()
        for r, s in zip(found, scores[keep]):
            r["score"] = float(s)
    else:  # an index written before sealed templates, never indexed or rotated since: rotated vectors
        found = index.search(keys.legacy.protect(vector[None])[0], k=max(50, 8 * top))
    best: dict[tuple, Match] = {}
    for r in found:
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
    vector, digest = probe_vector(photo, name, face, index_view(dest))
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
    view = index_view(dest)
    vecs, ids = [], []
    for person in people:
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            try:
                v, _ = probe_vector(str(photo), embedder_name, face=0, view=view)
            except ProbeError:
                continue
            vecs.append(v)
            ids.append(person.name)
    v, ids = np.array(vecs), np.array(ids)
    if len(set(ids)) < 2 or len(ids) <= len(set(ids)):
        raise ValueError(f"{labelled}: needs several photos of several people with faces")
    res = {**search_threshold(v, ids, target_fmr), "template_view": view, "calibrated_on": str(root),
           "calibrated_at": datetime.now(timezone.utc).isoformat()}
    index = IdentityIndex(dest, dim=v.shape[1])
    index.write_meta({**(index.meta() or {}), **res})
    return res


def reproject_index(dest: Location, old: MasterKey, new: MasterKey, dim: int = 128) -> int:
    """Key rotation for the index: every stored template is opened with the old key and sealed
    again with the new one (rows of an index written before as rotated vectors are sealed now);
    the plain vectors exist only in memory. A media already moved by an interrupted rotation is
    left as it is. Returns the rows re-sealed."""
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=dim)
    if not index.count():
        return 0
    a, b = index_keys(old, dim), index_keys(new, dim)
    index.add_sealed_column()
    n = 0
    for mid in index.media_ids():
        t = index.media_rows(mid)
        if not t.num_rows:
            continue
        try:
            plain = _plain(t, a, dim)
        except TemplateOpenError:
            _plain(t, b, dim)  # moved already (an interrupted rotation); anything else: the error stands
            continue
        index.replace_media(mid, _with_sealed(t, b, plain, dim))
        n += t.num_rows
    index.write_meta({"key_fingerprint": new.fingerprint, "template_transform": b.name, "score": b.score})
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
