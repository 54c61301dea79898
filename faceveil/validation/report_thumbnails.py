"""The report's thumbnails: 240 px PNGs of the anonymized output in DEST (never an original), a courtesy
that never fails the report."""

from __future__ import annotations

import base64

import pandas as pd

from faceveil.storage.paths import Location

THUMBNAILS = 8


def _thumbnail(dest: Location, row, frame: int, scratch: str) -> str | None:
    """Base64 PNG, 240 px wide, of the anonymized output (never an original)."""
    import cv2

    from faceveil.storage.media import read_frame

    with dest.local_file(row.output_path, scratch) as local:
        rgb = read_frame(local, row.kind, frame if row.kind != "image" else 0)
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (240, max(1, round(h * 240 / w))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return base64.b64encode(png.tobytes()).decode() if ok else None


def thumbnails(dest: Location, media: pd.DataFrame, checked: pd.DataFrame, scratch: str) -> list[dict]:
    """Up to THUMBNAILS published media, each at the middle of its checked frames that had faces."""
    out = []
    for row in media[media.status == "ok"].head(THUMBNAILS).itertuples():
        frames = checked[(checked.media_id == row.media_id) & (checked.faces_in > 0)].frame_index
        frame = int(frames.iloc[len(frames) // 2]) if len(frames) else 0
        try:
            png = _thumbnail(dest, row, frame, scratch)
        except Exception:  # a thumbnail is a courtesy: never fails the report
            png = None
        if png:
            out.append({"path": row.rel_path, "frame": frame, "png_base64": png})
    return out
