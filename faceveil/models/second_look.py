"""A second look at each frame with its faces anonymized: a detector's idea of "the face" moves
once the real one is masked (clasped hands, a face printed on a shirt, a head it had missed beside
the masked one); whatever it now finds is masked too, so the output holds nothing it calls a face."""

from __future__ import annotations

import numpy as np

from faceveil.models.anonymizers import Anonymizer
from faceveil.models.detections import Detections, inside_share, iou_matrix
from faceveil.models.detectors.base import Detector

OWN_FACE = 0.6  # a face the second look finds this much inside a region where a new face was put is that face


def second_look(rgb: np.ndarray, dets: Detections, anon: Anonymizer, detector: Detector, rounds: int = 1) -> Detections:
    """`dets` plus the faces `detector` finds in `rgb` once `dets` are anonymized, `rounds` times over
    (frames with no face are not looked at again: nothing was masked, so nothing changed). Where the
    method puts a new face in (`anon.shows_faces`: replace), a face found mostly inside its region
    (OWN_FACE) is that new face, not a missed one (the leak gate still checks the output)."""
    for _ in range(rounds):
        if not len(dets):
            return dets
        masked = anon.apply(rgb.copy(), dets, (lambda j: bytes(32)) if anon.needs_key else None, preview=True)
        more = detector.detect(masked)
        new = more[iou_matrix(more.boxes, dets.boxes).max(1) < 0.3] if len(more) else more
        if len(new) and anon.shows_faces:
            regions = anon.regions(dets, rgb.shape[1], rgb.shape[0]).astype(np.float32)
            new = new[inside_share(new.boxes, regions).max(1) < OWN_FACE]
        if not len(new):
            return dets
        dets = Detections.concat([dets, new])
    return dets
