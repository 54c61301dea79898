"""Calibration of the match threshold on labelled photos (one folder per person), stored with the index."""

from __future__ import annotations

import numpy as np

from faceveil.ops.search import ProbeError, probe_vector
from faceveil.pipeline.sealed_index import index_view
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location


CONFIDENCE = 0.9  # how sure the threshold holds on people the calibration has not seen (search_threshold)


def _similarities(vectors: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cosines of every pair, labels, mask of the pairs of different people)."""
    v, ids = np.asarray(vectors, np.float64), np.asarray(labels)
    return v @ v.T, ids, ids[:, None] != ids[None, :]


def _best_wrong(sims: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Each search's best match of someone else: a search is false when that clears the threshold."""
    return np.where(other, sims, -1).max(1)


def _photos_cut(worst: np.ndarray, target_fmr: float) -> float:
    worst = np.sort(worst)[::-1]
    k = int(np.floor(target_fmr * len(worst)))
    return float(np.nextafter(np.float32(worst[k]), np.float32(2))) if k < len(worst) else float(worst[-1])


def empirical_threshold(vectors: np.ndarray, labels, target_fmr: float = 0.01) -> float:
    """The lowest cosine at which at most `target_fmr` of these searches (each unit vector as a probe
    against everyone else's) return someone else: what the labelled photos themselves show. An
    attacker's threshold (flows/evaluate), where a lower one is the cautious side."""
    sims, _, other = _similarities(vectors, labels)
    return _photos_cut(_best_wrong(sims, other), target_fmr)


def _look_alike_bound(sims: np.ndarray, ids: np.ndarray, target_fmr: float, people: int, confidence: float) -> float:
    from scipy import stats

    names = sorted(set(ids.tolist()))
    if len(names) < 3:
        raise ValueError("calibration needs photos of at least three people (a spread of look-alike pairs)")
    best = [sims[np.ix_(ids == a, ids == b)].max() for i, a in enumerate(names) for b in names[i + 1 :]]
    z = np.arctanh(np.clip(best, -0.999999, 0.999999))
    n = len(z)
    pair = 1 - (1 - target_fmr) ** (1 / max(people - 1, 1))
    k = stats.nct.ppf(confidence, df=n - 1, nc=stats.norm.isf(pair) * np.sqrt(n)) / np.sqrt(n)
    return float(np.tanh(z.mean() + k * z.std(ddof=1)))


def look_alike_bound(vectors: np.ndarray, labels, target_fmr: float, people: int, confidence: float) -> float:
    """The cosine that, with `confidence`, at most `target_fmr` of searches in an archive of `people`
    people clear against someone else, on people the calibration has not seen. A search goes wrong on
    its person's closest look-alike: per pair of labelled people, their best cross match (Fisher z,
    modelled as normal); a probe competes with `people` - 1 others, so each pair may clear it with at
    most 1 - (1 - target)^(1 / (people - 1)); the quantile is a one-sided tolerance bound (non-central
    t), as a few pairs of people give only a rough estimate of their spread."""
    sims, ids, _ = _similarities(vectors, labels)
    return _look_alike_bound(sims, ids, target_fmr, people, confidence)


def search_threshold(
    vectors: np.ndarray, labels, target_fmr: float = 0.01, people: int | None = None, confidence: float = CONFIDENCE
) -> dict:
    """The match threshold for search: the higher of what the labelled photos show
    (empirical_threshold) and the look-alike bound for an archive of `people` people (default: as
    many as are labelled), with the figures at it on the labelled photos (tmr: probes whose best
    same-person match clears it)."""
    sims, ids, other = _similarities(vectors, labels)
    identities = len(set(ids.tolist()))
    people = max(people or identities, identities)
    worst = _best_wrong(sims, other)
    shown = _photos_cut(worst, target_fmr)
    threshold = max(shown, _look_alike_bound(sims, ids, target_fmr, people, confidence))
    same = ~other & ~np.eye(len(ids), dtype=bool)
    best_same = np.where(same, sims, -1).max(1)[same.any(1)]
    return {
        "threshold": threshold,
        "empirical_threshold": shown,
        "fmr": float((worst >= threshold).mean()),
        "pair_fmr": float((sims[other] >= threshold).mean()),
        "tmr": float((best_same >= threshold).mean()),
        "target_fmr": target_fmr,
        "people": people,
        "confidence": confidence,
        "photos": len(ids),
        "identities": identities,
        "calibrated": True,
    }


def calibrate(
    dest: Location,
    master: MasterKey,
    labelled: str,
    target_fmr: float = 0.01,
    embedder_name: str = "dlib-resnet",
    people: int | None = None,
) -> dict:
    """Picks the match threshold from labelled photos (one folder per person: the largest face of
    each photo) so that at most `target_fmr` of searches in an archive of `people` people (default:
    the labelled ones) return someone else, on people beyond the labelled ones too (search_threshold);
    stores it with the index (meta.json, signed with `master`'s control-file key). Returns the
    figures (tmr: probes whose best same-person match clears it)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from faceveil.storage.control import control_key
    from faceveil.storage.identity_index import IdentityIndex

    if not 0 < target_fmr < 1:
        raise ValueError("target false-match rate must be in (0, 1)")
    if people is not None and people < 2:
        raise ValueError(f"people = {people}: a search needs at least two people to go wrong")
    root = Path(labelled)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(folders) < 3:
        raise ValueError(f"{labelled}: needs a folder per person, at least three people")
    control = control_key(master)
    view = index_view(dest, control)
    vecs, ids = [], []
    for person in folders:
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            try:
                v, _ = probe_vector(str(photo), embedder_name, face=0, view=view)
            except ProbeError:
                continue
            vecs.append(v)
            ids.append(person.name)
    v, ids = np.array(vecs), np.array(ids)
    if len(set(ids)) < 3 or len(ids) <= len(set(ids)):
        raise ValueError(f"{labelled}: needs several photos of at least three people with faces")
    res = {
        **search_threshold(v, ids, target_fmr, people),
        "template_view": view,
        "calibrated_on": str(root),
        "calibrated_at": datetime.now(timezone.utc).isoformat(),
    }
    index = IdentityIndex(dest, dim=v.shape[1], control=control)
    index.write_meta({**(index.meta() or {}), **res})
    return res
