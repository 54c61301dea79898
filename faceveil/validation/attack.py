"""Re-identification attacks on anonymized outputs, as `faceveil evaluate` runs them.

The attacker holds a gallery: every labelled photo (faces/<identity>/<file>) where its detector
finds a face, the largest face embedded from the ORIGINAL photo. Each anonymized labelled photo is a
probe; it counts as re-identified when its rank-1 match (its own photo left out) carries the right
identity at or above the threshold. "direct" searches the original gallery; "parrot" (the published
attack on blur and pixelation) searches a gallery the attacker anonymized with the same method
(keyed methods: the attacker's own random keys). Plain functions: the detector and embedder are
passed in."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceveil.models.detections import Detections
from faceveil.storage.paths import Location

FACES_DIR = "faces"
PROBE_IOU = 0.3  # a manifest box counts as the labelled face when it overlaps the attacker's box this much


def labelled_photos(data: str, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """[(rel path, identity)] of the labelled photos among `files` [(rel, kind)]: images at
    faces/<identity>/<file> under DATA, or at <identity>/<file> when DATA itself is named `faces`."""
    root = Path(data).expanduser().resolve()
    prefix = () if root.name == FACES_DIR and not (root / FACES_DIR).is_dir() else (FACES_DIR,)
    out = []
    for rel, kind in files:
        parts = tuple(rel.split("/"))
        if kind == "image" and len(parts) == len(prefix) + 2 and parts[: len(prefix)] == prefix:
            out.append((rel, parts[-2]))
    return out


@dataclass
class LabelledFace:
    """One labelled photo as the attacker sees it: every face found (`faces`), the largest
    (`primary`, the labelled face) and its embedding."""

    rel: str
    label: str
    faces: Detections
    primary: Detections
    vector: np.ndarray


def embed_labelled(data: str, rel: str, label: str, detector, embedder) -> LabelledFace | None:
    """The photo's largest face embedded from the original; None when the detector finds none."""
    from faceveil.storage.media import read_image

    rgb, _ = read_image(str(Path(data) / rel))
    dets = detector.detect(rgb)
    if not len(dets):
        return None
    primary = dets[[int(np.argmax(dets.sizes))]]
    return LabelledFace(rel, label, dets, primary, np.asarray(embedder.embed(rgb, primary)[0], np.float32))


class Gallery:
    """The attacker's gallery over DATA: `entries` are the photos with a face (in order), `no_face`
    the labelled photos without one, `identities` every labelled identity (with a face or not)."""

    def __init__(self, data: str, entries: list[LabelledFace], no_face=(), identities=None):
        self.data = data
        self.rels = [e.rel for e in entries]
        self.labels = np.asarray([e.label for e in entries], dtype=object)
        self.faces = [e.faces for e in entries]  # the parrot attacker anonymizes them all, as the flow does
        self.primary = [e.primary for e in entries]
        dim = len(entries[0].vector) if entries else 0
        self.vectors = np.asarray([e.vector for e in entries], np.float32).reshape(len(entries), dim)
        self.no_face = list(no_face)
        self.identities = sorted(identities if identities is not None else set(self.labels))
        self.same_photo = np.eye(len(entries), dtype=bool)
        # a probe counts only where the gallery holds another photo of its identity (else no attack can succeed)
        others = (self.labels[:, None] == self.labels[None, :]) & ~self.same_photo
        self.eligible = others.any(1) if len(entries) else np.zeros(0, bool)

    @classmethod
    def build(cls, data: str, photos: list[tuple[str, str]], detector, embedder) -> "Gallery":
        """The gallery of `photos` [(rel, identity)], embedded one after the other here."""
        found = [(rel, embed_labelled(data, rel, label, detector, embedder)) for rel, label in photos]
        return cls(
            data,
            [e for _, e in found if e is not None],
            [rel for rel, e in found if e is None],
            {label for _, label in photos},
        )

    def __len__(self) -> int:
        return len(self.rels)

    def rate(self, probes: np.ndarray, gallery: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
        """(re-identified per probe, rate over the eligible probes) against `gallery`."""
        from faceveil.validation.identity import identified

        hit = identified(probes, self.labels, gallery, self.labels, threshold, exclude=self.same_photo)
        return hit, self.share(hit)

    def share(self, per_probe: np.ndarray) -> float:
        """Mean of a per-probe flag over the eligible probes (NaN when none is eligible)."""
        return float(per_probe[self.eligible].mean()) if self.eligible.any() else math.nan

    def answered(self, probes: np.ndarray, gallery: np.ndarray, threshold: float) -> np.ndarray:
        """Per probe: whether its best match (own photo left out) reaches `threshold`, right label or not."""
        if not len(self):
            return np.zeros(0, bool)
        p = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-12)
        g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
        sims = np.where(self.same_photo, -np.inf, p @ g.T)
        return sims.max(1) >= threshold


def parrot_vectors(gallery: Gallery, method: str, mask, embedder, media_of=None) -> np.ndarray:
    """The gallery anonymized by the attacker with the same method (keyed: the attacker's own
    random keys) and, as the flow does, each photo as the media its published name gives
    (`media_of(rel)`, default hashing.media_id), embedded at the labelled face."""
    from faceveil.hashing import media_id
    from faceveil.models.anonymizers import create_anonymizer
    from faceveil.storage.media import read_image

    media_of = media_of or media_id

    anon = create_anonymizer(method, mask)
    keys = (lambda j: secrets.token_bytes(32)) if anon.needs_key else None
    vecs = []
    for rel, faces, primary in zip(gallery.rels, gallery.faces, gallery.primary):
        rgb, _ = read_image(str(Path(gallery.data) / rel))
        anon.apply(rgb, faces, keys, media=media_of(rel))
        vecs.append(embedder.embed(rgb, primary)[0])
    return np.asarray(vecs, np.float32).reshape(gallery.vectors.shape)


def probe_vectors(gallery: Gallery, dest: Location, media, detections, embedder) -> tuple[np.ndarray, dict]:
    """The attacker's probes: each labelled photo's anonymized output (`media`, `detections`: the
    run's manifest tables as DataFrames) embedded at the manifest box that is the labelled face
    (best IoU with the attacker's box on the original); where the flow found no such face, at the
    attacker's box on what was written. A media with no output gives a NaN row."""
    from faceveil.storage.media import read_image

    by_rel = {r.rel_path: r for r in media.itertuples()}
    dets_of = {mid: g for mid, g in detections.groupby("media_id")} if len(detections) else {}
    vecs, counts = [], {"probes": len(gallery), "at_manifest_box": 0, "at_attacker_box": 0, "no_output": 0}
    for rel, primary in zip(gallery.rels, gallery.primary):
        row = by_rel.get(rel)
        if row is None or row.status != "ok" or not row.output_path:
            counts["no_output"] += 1  # nothing written: nothing to attack (a failure, counted in the run)
            vecs.append(np.full(gallery.vectors.shape[1], np.nan, np.float32))
            continue
        rgb, _ = read_image(dest.path(row.output_path))
        box = manifest_box(dets_of.get(row.media_id), primary)
        counts["at_manifest_box" if box is not primary else "at_attacker_box"] += 1
        vecs.append(embedder.embed(rgb, box)[0])
    return np.asarray(vecs, np.float32).reshape(gallery.vectors.shape), counts


def manifest_box(rows, primary: Detections) -> Detections:
    """The manifest's face (DataFrame `rows` of one media) overlapping `primary` at PROBE_IOU or
    more, best first; `primary` itself when there is none."""
    from faceveil.validation.identity import match_faces

    if rows is None or not len(rows):
        return primary
    found = Detections(
        rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
        rows["score"].to_numpy(np.float32),
        np.stack(rows["landmarks"].to_numpy()).astype(np.float32),
    )
    j = int(match_faces(found, primary, PROBE_IOU)[0])
    return found[[j]] if j >= 0 else primary


def attack(gallery: Gallery, method: str, mask, dest: Location, media, detections, threshold: float, embedder) -> dict:
    """Both attacks on one method's outputs: rates over the eligible probes ('direct', 'parrot',
    'either', and 'rate', the larger of the two); `<name>_answered`: share of probes whose rank-1
    match reaches the threshold at all (the rest of those answers name the wrong person)."""
    t0 = time.perf_counter()
    probes, counts = probe_vectors(gallery, dest, media, detections, embedder)
    valid = ~np.isnan(probes).any(1) if len(probes) else np.zeros(0, bool)
    probes = np.nan_to_num(probes, nan=0.0)  # a missing output never counts as re-identified
    n = int(gallery.eligible.sum())
    out, hits = {"probes": n}, {}
    for name, against in (("direct", gallery.vectors), ("parrot", parrot_vectors(gallery, method, mask, embedder))):
        hits[name] = gallery.rate(probes, against, threshold)[0] & valid
        out[name] = gallery.share(hits[name])
        out[f"{name}_answered"] = gallery.share(gallery.answered(probes, against, threshold) & valid)
    out.update(
        {
            "either": gallery.share(hits["direct"] | hits["parrot"]),
            "rate": max(out["direct"], out["parrot"]) if n else math.nan,
            "parrot_keys": "attacker's own random keys" if method == "scramble" else None,
            "probe_boxes": counts,
            "seconds": time.perf_counter() - t0,
        }
    )
    return out
