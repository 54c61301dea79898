"""Search the identity index with a probe photo: the probe's face embedded the way the index holds
faces, scored against the opened templates; tracks at or above the threshold, never a best guess.

Which tracks match is decided on the cosine against the calibrated threshold (`faceveil calibrate`),
as before; how the matches are ordered weighs face quality (`QualityRanking`), so a small blurred
bystander whose cosine happens to be high does not come before a clear face of the person."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from faceveil.pipeline.sealed_index import index_keys, index_view, plain_vectors
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location

log = logging.getLogger(__name__)


class ProbeError(ValueError):
    """A probe photo that cannot be searched with: no face, several faces, unreadable."""


def probe_vector(
    path: str, embedder_name: str, face: int | None = None, view: str = "mirror-mean"
) -> tuple[np.ndarray, str]:
    """(plain unit embedding of the probe's face, the `view` way; SHA-256 of the photo). Several
    faces need `face`."""
    from faceveil.models.track_templates import identity_vectors
    from faceveil.storage.media import MediaError, read_image
    from faceveil.pipeline.toolkit import loaded_detector, loaded_embedder
    from faceveil.models.detectors import DetectorSettings

    try:
        rgb, _ = read_image(path)
    except MediaError as e:
        raise ProbeError(f"{path}: {e.reason}") from None
    dets = loaded_detector("centerface", DetectorSettings(threshold=0.5)).detect(rgb)
    if not len(dets):
        raise ProbeError(f"{path}: no face found in the probe photo")
    order = [int(j) for j in np.argsort(-dets.sizes)]
    order = [
        j
        for n, j in enumerate(order)  # a box mostly inside a larger one is the same face found twice
        if all(_inside(dets.boxes[j], dets.boxes[i]) < 0.4 for i in order[:n])
    ]
    if face is None and len(order) > 1:
        listed = "; ".join(f"{i}: box {[int(v) for v in dets.boxes[j]]}" for i, j in enumerate(order))
        raise ProbeError(f"{path}: {len(order)} faces in the probe photo; choose one with --face N ({listed})")
    if not 0 <= (face or 0) < len(order):
        raise ProbeError(f"{path}: --face {face} but the photo has {len(order)} face(s)")
    j = order[face or 0]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return identity_vectors(loaded_embedder(embedder_name), rgb, dets[[int(j)]], view)[0], digest


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """The share of box a's area that lies inside box b."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)


@dataclass(frozen=True)
class QualityRanking:
    """The order of matches: rank = cosine - weight * max(0, reference - quality), `quality` the
    stored face's `ranking_quality` (models/track_templates: size x sharpness x frontality, 0..1).
    A face at or above the reference quality keeps its cosine; below it, it loses up to `weight`
    (at quality 0). Unknown quality (an index written before quality was stored) costs nothing: such
    rows rank by cosine, as before. weight 0 turns quality ranking off. The defaults were tuned by
    benchmarks/search.py on calibration identities only (held-out identities: the figure reported)."""

    weight: float = 0.1
    reference: float = 0.4

    def rank(self, cosine, quality) -> np.ndarray:
        """Rank scores for cosines and qualities (arrays; NaN quality: unknown, no penalty)."""
        q = np.asarray(quality, np.float64)
        penalty = self.weight * np.clip(self.reference - np.nan_to_num(q, nan=self.reference), 0, None)
        return np.asarray(cosine, np.float64) - penalty


RANK_BY_COSINE = QualityRanking(weight=0.0)
"""Quality ranking off: matches ordered by cosine alone (what search did before)."""


@dataclass
class Match:
    media_id: str
    rel_path: str
    camera: str
    track_id: int
    score: float  # the best cosine of the track's template and exemplars: what the threshold decides on
    first_frame: int
    last_frame: int
    t_start_s: float
    t_end_s: float
    rank: float = float("nan")  # the order of matches: QualityRanking.rank of the track's best row
    quality: float | None = None  # that row's ranking_quality; None: unknown (indexed before it was stored)

    @property
    def ref(self) -> str:
        return f"{self.media_id}:{self.track_id}"


def search_tracks(
    dest: Location,
    master: MasterKey,
    vector: np.ndarray,
    top: int = 10,
    threshold: float | None = None,
    ranking: QualityRanking | None = QualityRanking(),
) -> tuple[list[Match], float]:
    """Tracks whose template or an exemplar scores (cosine) at or above the threshold (calibrated
    one by default, from meta.json once its MAC holds), one entry per track, never a best guess
    below it; best first by `ranking` (the best rank of the track's rows at or above the threshold;
    None or RANK_BY_COSINE: by cosine alone)."""
    from faceveil.models.track_templates import QUALITY_FIELDS
    from faceveil.storage.control import control_key
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=len(vector), control=control_key(master))
    meta = index.meta() or {}
    cut = float(threshold if threshold is not None else meta.get("threshold", 0.92))
    keys = index_keys(master, len(vector))
    if index.sealed:  # sealed templates: opened here, in this process only, and scored exactly
        cols = [
            "row_id",
            "media_id",
            "rel_path",
            "camera",
            "track_id",
            "first_frame",
            "last_frame",
            "t_start_s",
            "t_end_s",
            *QUALITY_FIELDS,
            "vector",
            "sealed",
        ]
        t = index.rows(columns=cols)
        plain = plain_vectors(t, keys, len(vector), skip_bad=True)
        bad = int(np.isnan(plain[:, 0]).sum()) if t.num_rows else 0
        if bad:  # another key's rows, or rows moved or edited: they match nothing (never a guess)
            log.warning(
                "%d of %d identity templates do not open with this key (another key's, or moved "
                "or edited rows): they cannot match",
                bad,
                t.num_rows,
            )
        with np.errstate(invalid="ignore"):
            scores = plain @ (vector / max(float(np.linalg.norm(vector)), 1e-12)) if t.num_rows else np.zeros(0)
            keep = np.flatnonzero(scores >= cut)
        found = t.drop_columns(["vector", "sealed"]).take(pa.array(keep, pa.int64())).to_pylist()
        for r, s in zip(found, scores[keep]):
            r["score"] = float(s)
    else:  # an index written before sealed templates, never indexed or rotated since: rotated vectors
        found = index.search(keys.legacy.protect(vector[None])[0], k=max(50, 8 * top))
    return _ranked(found, cut, ranking or RANK_BY_COSINE)[:top], cut


def _ranked(found: list[dict], cut: float, ranking: QualityRanking) -> list[Match]:
    """One Match per track among rows scoring >= cut: its best cosine, its best rank (and that
    row's quality); best rank first (ties: best cosine)."""
    from faceveil.models.track_templates import QUALITY_FIELDS, ranking_quality

    found = [r for r in found if r["score"] >= cut]
    measures = [[np.nan if r.get(f) is None else r[f] for r in found] for f in QUALITY_FIELDS]
    quality = ranking_quality(*measures) if found else np.zeros(0)
    unknown = int(np.isnan(quality).sum())
    if unknown and ranking.weight:
        log.warning(
            "%d of %d matching templates carry no face quality (indexed before it was stored): they "
            "rank by cosine alone; re-index their media to rank them by quality",
            unknown,
            len(found),
        )
    ranks = ranking.rank([r["score"] for r in found], quality)
    best: dict[tuple, Match] = {}
    for r, rank, q in zip(found, ranks, quality):
        key = (r["media_id"], r["track_id"])
        m = best.get(key)
        if m is None:
            m = best[key] = Match(
                r["media_id"],
                r["rel_path"],
                r["camera"],
                int(r["track_id"]),
                float(r["score"]),
                int(r["first_frame"]),
                int(r["last_frame"]),
                float(r["t_start_s"]),
                float(r["t_end_s"]),
            )
        m.score = max(m.score, float(r["score"]))
        if not rank <= m.rank:  # the first row, or a better rank (NaN compares false)
            m.rank, m.quality = float(rank), None if np.isnan(q) else float(q)
    return sorted(best.values(), key=lambda m: (-m.rank, -m.score))


def find_by_probe(
    dest: Location,
    master: MasterKey,
    photo: str,
    face: int | None = None,
    top: int = 10,
    ranking: QualityRanking | None = QualityRanking(),
) -> tuple[list[Match], float, str]:
    """(matching tracks, threshold used, probe SHA-256) for one photo: the key checked first, the
    probe embedded with the embedder the index was built with; ordered by `ranking` (search_tracks)."""
    from faceveil.storage.control import control_key
    from faceveil.storage.identity_index import IdentityIndex
    from faceveil.storage.vault import check_key

    control = control_key(master)
    check_key(dest, master.fingerprint, control=control)
    name = (IdentityIndex(dest, control=control).meta() or {}).get("embedder", "dlib-resnet")
    vector, digest = probe_vector(photo, name, face, index_view(dest, control))
    matches, cut = search_tracks(dest, master, vector, top, ranking=ranking)
    return matches, cut, digest
