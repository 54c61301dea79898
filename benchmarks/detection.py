"""Detection benchmark on ../shared/data/detection: recall at IoU 0.5 (WIDER subset and dlib sets
separately) and speed, for every registered detector; and, for the default detector, tracking off
(detector on every frame) against tracking on (detector on every `detect_every`-th frame, tracker
filling the rest) on camera-pan sequences made from the same images, where the ground truth moves
with the pan.

    .venv/bin/python benchmarks/detection.py [--pan-frames 12] [--pan-step 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from common import ground_truth, matched
from faceveil.config import AnonymizeConfig
from faceveil.models.detections import Detections
from faceveil.models.detectors import DETECTORS, DEFAULT_DETECTOR, create_detector
from faceveil.models.tracking import track_media


def still_images(gt):
    rows = []
    for name in DETECTORS.names():
        det = create_detector(name)
        hits = {"wider": 0, "dlib": 0}
        total = {"wider": 0, "dlib": 0}
        n_pred, pixels, secs = 0, 0, 0.0
        for path, g in gt.items():
            rgb = np.asarray(Image.open(path).convert("RGB"))
            t0 = time.perf_counter()
            d = det.detect(rgb)
            secs += time.perf_counter() - t0
            pixels += rgb.shape[0] * rgb.shape[1]
            hits[g["set"]] += matched(g["boxes"], d.boxes)
            total[g["set"]] += len(g["boxes"])
            n_pred += len(d)
        rows.append(
            (
                name,
                det.threshold,
                hits["wider"] / total["wider"],
                hits["dlib"] / total["dlib"],
                (hits["wider"] + hits["dlib"]) / (total["wider"] + total["dlib"]),
                n_pred,
                len(gt) / secs,
                pixels / secs / 1e6,
                total,
            )
        )
    print("\n== still images: recall at IoU 0.5 ==")
    print(f"{'detector':12} {'thresh':>6} {'WIDER':>7} {'dlib':>7} {'all':>7} {'boxes':>6} {'img/s':>7} {'Mpx/s':>7}")
    for name, th, rw, rd, ra, npred, ips, mps, total in rows:
        print(f"{name:12} {th:6.2f} {rw:7.3f} {rd:7.3f} {ra:7.3f} {npred:6d} {ips:7.2f} {mps:7.2f}")
    print(f"(ground truth: {rows[0][-1]['wider']} WIDER faces, {rows[0][-1]['dlib']} dlib faces, {len(gt)} images)")


def pan_sequence(rgb, boxes, n, step):
    """n crops panning right/down by `step` px per frame, and the ground truth moved with them."""
    h, w = rgb.shape[:2]
    cw, ch = w - n * step, h - n * step // 2
    for i in range(n):
        x0, y0 = i * step, i * step // 2
        b = boxes - np.array([x0, y0, x0, y0], np.float32)
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, cw)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, ch)
        keep = (b[:, 2] - b[:, 0] > 2) & (b[:, 3] - b[:, 1] > 2)
        yield np.ascontiguousarray(rgb[y0 : y0 + ch, x0 : x0 + cw]), b[keep]


def tracking(gt, n_frames, step):
    cfg = AnonymizeConfig.of(src=".", dest=".")
    det = create_detector(DEFAULT_DETECTOR)
    print(f"\n== {DEFAULT_DETECTOR} on pan sequences ({n_frames} frames/image, {step} px/frame): tracking off vs on ==")
    print(f"{'mode':34} {'WIDER':>7} {'dlib':>7} {'all':>7} {'frames/s':>9}")
    step = cfg.settings.frame_step(30.0, 1280, 720)  # the default sampling for a 30 fps 720p video
    for label, every, track in (
        ("tracking off (detect every frame)", 1, False),
        (f"tracking on (detect every {step})", step, True),
    ):
        hits = {"wider": 0, "dlib": 0}
        total = {"wider": 0, "dlib": 0}
        secs, frames = 0.0, 0
        for path, g in gt.items():
            rgb = np.asarray(Image.open(path).convert("RGB"))
            seq = list(pan_sequence(rgb, g["boxes"], n_frames, step))
            t0 = time.perf_counter()
            sampled = [(i, det.detect(f)) for i, (f, _) in enumerate(seq) if i % every == 0 or i == n_frames - 1]
            if track:
                h, w = seq[0][0].shape[:2]
                per_frame, _ = track_media(sampled, n_frames, w, h, cfg.settings.tracker(every))
            else:
                per_frame = dict(sampled)
            secs += time.perf_counter() - t0
            frames += n_frames
            for i, (_, b) in enumerate(seq):
                hits[g["set"]] += matched(b, per_frame.get(i, Detections.empty()).boxes)
                total[g["set"]] += len(b)
        print(
            f"{label:34} {hits['wider'] / total['wider']:7.3f} {hits['dlib'] / total['dlib']:7.3f} "
            f"{(hits['wider'] + hits['dlib']) / (total['wider'] + total['dlib']):7.3f} {frames / secs:9.2f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pan-frames", type=int, default=12)
    ap.add_argument("--pan-step", type=int, default=4)
    args = ap.parse_args()
    gt = ground_truth()
    still_images(gt)
    tracking(gt, args.pan_frames, args.pan_step)
