"""The pulse edit (`--pulse`) on the real face clips of ../shared/data/video: per clip and track,
heart rate and peak SNR read by POS, CHROM, GREEN (on the skin mask's mean and, as an independent
region, on the mean of the face box's inner 60 %) and PhysNet (open-rppg, on face-box crops), before
and after target:100 and after scrub (POS is the one optimised through); PSNR of the edit; and
seconds of compute per second of 720p video on this machine (the pulse task: decode, skin traces,
optimisation; plus the encoder's extra work to apply the offsets, from finish-video with and without
the edit). The clips are short (2-5 s) webcam/GIF footage: their own pulse is weak and the
estimators read mostly noise there, so each clip is also measured with a 72 bpm pulse (0.5 grey
level in G) added to its skin (the pipeline's mask of the first pass, grown by 4 px so some of it
lies outside the edit's mask, as a real pulse does).

The tasks run in-process (the same functions the flow runs on Dask workers, without Prefect). PhysNet
reads nothing on clips shorter than its 128-frame window at 30 fps (the ASL clips).

    .venv/bin/python benchmarks/pulse.py [--clips a.mp4,b.mp4] [--no-physnet] [--no-720p]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, shared_data

sys.path.insert(0, str(REPO / "tests"))
from pulseclip import PBV, read_video, write_video  # noqa: E402

CLIPS = ["intel_asl_book.mp4", "intel_asl_again.mp4",
         "intel_head_pose_male.mp4", "intel_head_pose_female_and_male.mp4"]


def run(src_dir: Path, dest: Path, method_pulse: str | None):
    """detect -> track -> (pulse) -> finish, in-process; (tracked, seconds of pulse task, seconds of finish)."""
    from faceveil.config import AnonymizeConfig
    from faceveil.tasks.detect import detect_chunk, track_video
    from faceveil.tasks.discover import discover
    from faceveil.tasks.finish_video import finish_video
    from faceveil.tasks.plan import plan_video
    from faceveil.tasks.pulse import pulse_video

    config = AnonymizeConfig(src=str(src_dir), dest=str(dest), method="keep", pulse=method_pulse, lossless=True, workers=1)
    (item,), _ = discover(config)
    plan = plan_video(config, item)
    tracked = track_video(config, item, plan.info, [detect_chunk(config, item, plan.info, c) for c in plan.chunks])
    t0 = time.perf_counter()
    tracked = pulse_video(config, item, plan.info, tracked)
    t_pulse = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = finish_video(config, item, plan.info, tracked, "bench")
    assert res.ok, res.row["reason"]
    return tracked, plan.info, t_pulse, time.perf_counter() - t0


def traces(frames, tracked, fps):
    """track -> (mask trace, inner-box trace, box crops), over the frames where it was seen."""
    from faceveil.pipeline.pulse import skin_of

    out = {}
    h, w = frames.shape[1:3]
    for i in sorted(tracked.per_frame):
        d = tracked.per_frame[i]
        for j, tid in enumerate(d.track_ids.tolist()):
            if tid < 0:
                continue
            o = out.setdefault(tid, {"mask": [], "box": [], "crop": [], "box0": d.boxes[j]})
            r = skin_of(d, j, h, w)
            o["mask"].append(r.mean(frames[i]) if r is not None else np.full(3, np.nan))
            x1, y1, x2, y2 = d.boxes[j]
            cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, 0.3 * (x2 - x1), 0.3 * (y2 - y1)
            inner = frames[i, max(0, int(cy - bh)):int(cy + bh), max(0, int(cx - bw)):int(cx + bw)]
            o["box"].append(inner.reshape(-1, 3).mean(axis=0) if inner.size else np.full(3, np.nan))
            bx = [int(round(v)) for v in o["box0"]]
            o["crop"].append(frames[i, max(0, bx[1]):bx[3], max(0, bx[0]):bx[2]])
    return out


def read(t, fps, physnet) -> dict:
    from faceveil.models.rppg import create_estimator
    from faceveil.models.rppg.edit import fill_gaps

    got = {}
    for roi in ("mask", "box"):
        x = fill_gaps(np.array(t[roi]))
        for n in ("pos", "chrom", "green"):
            got[f"{n}/{roi}"] = create_estimator(n).read_trace(x, fps)
    if physnet:
        h = min(c.shape[0] for c in t["crop"])
        w = min(c.shape[1] for c in t["crop"])
        got["physnet/crop"] = create_estimator("physnet").read_clip(np.stack([c[:h, :w] for c in t["crop"]]), fps)
    return got


def with_pulse(frames, tracked, fps, bpm=72.0, amp=0.5, grow=4, seed=0):
    """The clip with a pulse added to each face's skin (its mask grown by `grow` px)."""
    import cv2

    from faceveil.pipeline.pulse import skin_of

    out = frames.astype(np.float32)
    rng = np.random.default_rng(seed)
    h, w = frames.shape[1:3]
    k = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    for i, d in tracked.per_frame.items():
        for j in range(len(d)):
            r = skin_of(d, j, h, w)
            if r is None:
                continue
            m = cv2.dilate(r.full(h, w).astype(np.uint8), k).astype(bool)
            mean = out[i][m].mean(axis=0)
            out[i][m] += amp / PBV[1] * np.sin(2 * np.pi * bpm / 60 * i / fps) * PBV * mean / mean[1]
    return np.clip(np.floor(out + rng.random(out.shape, dtype=np.float32)), 0, 255).astype(np.uint8)


def fmt(r) -> str:
    return "  none " if r.bpm is None else f"{r.bpm:5.1f}/{r.snr_db:4.1f}"


def clip_figures(path: Path, tmp: Path, physnet: bool) -> None:
    import av

    name = path.stem
    src = tmp / name / "src"
    src.mkdir(parents=True)
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
    frames = read_video(str(path))
    write_video(str(src / "clip.mkv"), frames, fps)
    tracked, info, _, _ = run(src, tmp / name / "plain", None)
    for label, clip in (("own", frames), ("+72bpm", with_pulse(frames, tracked, fps))):
        write_video(str(src / "clip.mkv"), clip, fps)
        before = {tid: read(t, fps, physnet) for tid, t in traces(clip, tracked, fps).items()}
        for spec in ("target:100", "scrub"):
            dest = tmp / name / f"{label}-{spec.replace(':', '')}"
            tr, _, _, _ = run(src, dest, spec)
            out = read_video(str(dest / "clip.mkv"))
            psnr = 10 * np.log10(255 ** 2 / max(((out.astype(float) - clip) ** 2).mean(), 1e-12))
            for tid, t in traces(out, tr, fps).items():
                if tid not in before or len(t["mask"]) < 2 * fps:
                    continue
                after = read(t, fps, physnet)
                cells = " ".join(f"{k}: {fmt(before[tid][k])} -> {fmt(v)}" for k, v in after.items())
                print(f"{name:26s} {label:7s} {spec:10s} track {tid} ({len(t['mask'])} fr) PSNR {psnr:5.1f} dB | {cells}")


def speed_720p(path: Path, tmp: Path) -> None:
    """Seconds of compute per second of 720p video: the pulse task, and finish-video with/without it."""
    import cv2

    frames = read_video(str(path))
    import av

    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
    big = np.stack([cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in frames])
    src = tmp / "720p" / "src"
    src.mkdir(parents=True)
    write_video(str(src / "clip.mkv"), big, fps)
    seconds = len(big) / fps
    run(src, tmp / "720p" / "warm", "scrub")  # models loaded, caches warm: not timed
    _, _, _, t_plain = run(src, tmp / "720p" / "plain", None)
    for spec in ("scrub", "target:100"):
        _, _, t_pulse, t_finish = run(src, tmp / "720p" / spec.replace(":", ""), spec)
        print(f"720p {spec:10s}: pulse task {t_pulse / seconds:.2f} s/s of video, encoder's extra "
              f"{(t_finish - t_plain) / seconds:+.2f} s/s (finish-video {t_finish / seconds:.2f} vs {t_plain / seconds:.2f} "
              f"without the edit; lossless FFV1), {len(big)} frames, {seconds:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--no-physnet", action="store_true")
    ap.add_argument("--no-720p", action="store_true")
    args = ap.parse_args()
    data = shared_data() / "video"
    tmp = Path(tempfile.mkdtemp(prefix="faceveil-pulse-bench-"))
    print("readings: bpm/peak-SNR dB, before -> after; /mask = the edit's skin mask, /box = inner 60 % of the face box, "
          "/crop = face-box crops; POS/mask is the estimator optimised through")
    try:
        for name in args.clips.split(","):
            clip_figures(data / name, tmp, not args.no_physnet)
        if not args.no_720p:
            speed_720p(data / "intel_asl_book.mp4", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
