"""Calibration of the match threshold on labelled photos (one folder per person), stored with the index."""

from __future__ import annotations

import numpy as np

from faceveil.ops.search import ProbeError, probe_vector
from faceveil.pipeline.sealed_index import index_view
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location


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
    return {
        "threshold": threshold,
        "fmr": float((worst >= threshold).mean()),
        "pair_fmr": float((sims[other] >= threshold).mean()),
        "tmr": float((best_same >= threshold).mean()),
        "target_fmr": target_fmr,
        "photos": len(ids),
        "identities": len(set(ids)),
        "calibrated": True,
    }


def calibrate(
    dest: Location, master: MasterKey, labelled: str, target_fmr: float = 0.01, embedder_name: str = "dlib-resnet"
) -> dict:
    """Picks the match threshold from labelled photos (one folder per person: the largest face of
    each photo) so that at most `target_fmr` of searches (each photo as a probe against everyone
    else's) return someone else; stores it with the index (meta.json, signed with `master`'s
    control-file key). Returns the figures (tmr: probes whose best same-person match clears it)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from faceveil.storage.control import control_key
    from faceveil.storage.identity_index import IdentityIndex

    if not 0 < target_fmr < 1:
        raise ValueError("target false-match rate must be in (0, 1)")
    root = Path(labelled)
    people = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(people) < 2:
        raise ValueError(f"{labelled}: needs a folder per person, at least two people")
    control = control_key(master)
    view = index_view(dest, control)
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
    res = {
        **search_threshold(v, ids, target_fmr),
        "template_view": view,
        "calibrated_on": str(root),
        "calibrated_at": datetime.now(timezone.utc).isoformat(),
    }
    index = IdentityIndex(dest, dim=v.shape[1], control=control)
    index.write_meta({**(index.meta() or {}), **res})
    return res
