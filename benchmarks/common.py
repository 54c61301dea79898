"""Shared helpers for the benchmarks: where the evaluation data is, ground truth, recall."""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def shared_data() -> Path:
    if not SHARED.is_dir():
        sys.exit(f"benchmark needs the evaluation data at {SHARED} (not present)")
    return SHARED


def ground_truth() -> dict[str, dict]:
    """image path -> {'set': 'wider'|'dlib', 'boxes': (N,4) xyxy} (invalid WIDER boxes dropped)."""
    data = shared_data()
    out: dict[str, dict] = defaultdict(lambda: {"set": None, "boxes": []})
    with open(data / "detection" / "annotations.csv") as f:
        for row in csv.DictReader(f):
            if row["invalid"] == "1":
                continue
            x, y, w, h = (float(row[k]) for k in "xywh")
            e = out[str(data / row["image"])]
            e["set"] = "wider" if row["source"].startswith("WIDER") else "dlib"
            e["boxes"].append([x, y, x + w, y + h])
    return {k: {"set": v["set"], "boxes": np.asarray(v["boxes"], np.float32)} for k, v in out.items()}


def matched(gt: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> int:
    """Ground-truth boxes matched one-to-one by a predicted box at IoU >= iou (greedy by IoU)."""
    from faceveil.models.detections import iou_matrix

    m = iou_matrix(gt, pred)
    hits = 0
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        hits += 1
        m[i, :] = -1
        m[:, j] = -1
    return hits
