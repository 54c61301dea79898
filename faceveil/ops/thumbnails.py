"""Thumbnails of search matches, cut from the anonymized output (what a searcher may see)."""

from __future__ import annotations

import numpy as np

from faceveil.ops.search import Match
from faceveil.storage.paths import Location


def thumbnail(dest: Location, state: Location, match: Match, out_dir: str, rank: int, scratch: str) -> str:
    """A JPEG of the match's face region as it is in the ANONYMIZED output in DEST (middle of the
    track, with context around it; its box from the manifests in the state root): what a searcher
    may see before anything is restored."""
    import os

    import cv2

    from faceveil.storage import manifests
    from faceveil.storage.media import iter_frames, probe_video, read_image

    det = manifests.read_part(state, "detections", match.media_id).to_pandas()
    det = det[det.track_id == match.track_id].sort_values("frame_index")
    row = det.iloc[len(det) // 2]
    media = manifests.read_part(state, "media", match.media_id).to_pylist()[0]
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
