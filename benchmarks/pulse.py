"""The pulse edit (`--pulse`) on the real face clips of ../shared/data/video: per clip and track,
heart rate and peak SNR read by POS, CHROM, GREEN in every region an attacker may read (the skin mask
the edit works on, the whole face box, the forehead, each cheek, the neck: models/rppg/regions.py) and
PhysNet (open-rppg, on face-box crops), before and after target:100 and after scrub (POS is the one
optimised through), with the pipeline's own verdict over the regions; PSNR of the edit; and
seconds of compute per second of 720p video on this machine (the pulse task: decode, skin traces,
optimisation; plus the encoder's extra work to apply the offsets, from finish-video with and without
the edit). The clips are short (2-5 s) webcam/GIF footage: their own pulse is weak and the
estimators read mostly noise there, so each clip is also measured with a 72 bpm pulse (1.0 grey
level in G) added to every skin-coloured pixel of each head and neck (tests/pulseclip.head_skin, a
YCrCb rule independent of faceveil's mask, so some of it lies outside the edit's mask, as a real
pulse does).

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
from pulseclip import PBV, head_skin, read_video, write_video  # noqa: E402

CLIPS = ["intel_asl_book.mp4", "intel_asl_again.mp4", "intel_head_pose_male.mp4", "intel_head_pose_female_and_male.mp4"]


def run(src_dir: Path, dest: Path, method_pulse: str | None):
    """detect -> track -> (pulse) -> finish, in-process; (tracked, seconds of pulse task, seconds of finish)."""
    from faceveil.config import AnonymizeConfig
    from faceveil.tasks.detect import detect_chunk, track_video
    from faceveil.tasks.discover import discover
    from faceveil.tasks.finish_video import finish_video
    from faceveil.tasks.plan import plan_video
    from faceveil.tasks.pulse import pulse_video

    config = AnonymizeConfig.of(
        src=str(src_dir), dest=str(dest), method="keep", pulse=method_pulse, lossless=True, workers=1
    )
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
    """track -> {region: mean RGB per frame} (pipeline/pulse.sample: the edit's mask, found on the
    clip as the pipeline saw it, and every attacker region) and face-box crops, where it was seen."""
    from faceveil.pipeline.pulse import skin_of

    out = {}
    h, w = frames.shape[1:3]
    for i in sorted(tracked.per_frame):
        d = tracked.per_frame[i]
        for j, tid in enumerate(d.track_ids.tolist()):
            if tid < 0 or (r := skin_of(d, j, h, w, frames[i])) is None:
                continue
            o = out.setdefault(tid, {"regions": [], "crop": [], "box0": d.boxes[j], "masks": []})
            o["masks"].append((i, r))
            bx = [int(round(v)) for v in o["box0"]]
            o["crop"].append(frames[i, max(0, bx[1]) : bx[3], max(0, bx[0]) : bx[2]])
    return out


def read(t, frames, tracked, fps, physnet) -> dict:
    """{region/estimator: Reading} of one track on `frames`, in the masks found before the edit."""
    from faceveil.models.rppg import create_estimator
    from faceveil.models.rppg.edit import fill_gaps
    from faceveil.pipeline.pulse import sample

    per = []
    for i, r in t["masks"]:
        d = tracked.per_frame[i]
        j = int(np.flatnonzero(d.track_ids == t["tid"])[0])
        per.append(sample(frames[i], d, j, r))
    got = {}
    for roi in per[0]:
        x = np.array([p[roi] for p in per])
        if np.isfinite(x).all(axis=1).sum() < 2 * fps:
            continue
        for n in ("pos", "chrom", "green"):
            got[f"{roi}/{n}"] = create_estimator(n).read_trace(fill_gaps(x), fps)
    if physnet:
        h = min(c.shape[0] for c in t["crop"])
        w = min(c.shape[1] for c in t["crop"])
        got["crop/physnet"] = create_estimator("physnet").read_clip(np.stack([c[:h, :w] for c in t["crop"]]), fps)
    return got


def with_pulse(frames, tracked, fps, bpm=72.0, amp=1.0, seed=0):
    """The clip with a pulse added to every skin-coloured pixel of each head and neck."""
    out = frames.astype(np.float32)
    rng = np.random.default_rng(seed)
    for i, d in tracked.per_frame.items():
        for j in range(len(d)):
            m = head_skin(frames[i], d.boxes[j])
            if m.sum() < 20:
                continue
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
        found = traces(clip, tracked, fps)
        for tid, t in found.items():
            t["tid"] = tid
        before = {tid: read(t, clip, tracked, fps, physnet) for tid, t in found.items() if len(t["masks"]) >= 2 * fps}
        for spec in ("target:100", "scrub"):
            dest = tmp / name / f"{label}-{spec.replace(':', '')}"
            tr, _, _, _ = run(src, dest, spec)
            out = read_video(str(dest / "clip.mkv"))
            psnr = 10 * np.log10(255**2 / max(((out.astype(float) - clip) ** 2).mean(), 1e-12))
            verdicts = {t["track_id"]: t for t in tr.pulse.tracks}
            for tid, b in before.items():
                after = read(found[tid], out, tracked, fps, physnet)
                ok = _ok(spec, after)
                print(
                    f"{name:26s} {label:7s} {spec:10s} track {tid} ({len(found[tid]['masks'])} fr, skin: "
                    f"{verdicts.get(tid, {}).get('skin', '?')}) PSNR {psnr:5.1f} dB, every region {'PASS' if ok else 'FAIL'}"
                )
                for k, v in after.items():
                    print(f"    {k:24s} {fmt(b[k]) if k in b else '   -  '} -> {fmt(v)}")


def _ok(spec: str, after: dict) -> bool:
    """scrub: no reading shows a peak above 3 dB; target: every reading that shows one gives the target."""
    from faceveil.pipeline.pulse import SCRUB_MAX_SNR_DB, TARGET_TOLERANCE_BPM

    shows = [r for r in after.values() if r.bpm is not None and r.snr_db > SCRUB_MAX_SNR_DB]
    if spec == "scrub":
        return not shows
    bpm = float(spec.split(":")[1])
    return all(abs(r.bpm - bpm) <= TARGET_TOLERANCE_BPM for r in shows)


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
        print(
            f"720p {spec:10s}: pulse task {t_pulse / seconds:.2f} s/s of video, encoder's extra "
            f"{(t_finish - t_plain) / seconds:+.2f} s/s (finish-video {t_finish / seconds:.2f} vs {t_plain / seconds:.2f} "
            f"without the edit; lossless FFV1), {len(big)} frames, {seconds:.1f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--no-physnet", action="store_true")
    ap.add_argument("--no-720p", action="store_true")
    args = ap.parse_args()
    data = shared_data() / "video"
    tmp = Path(tempfile.mkdtemp(prefix="faceveil-pulse-bench-"))
    print(
        "readings: bpm/peak-SNR dB, before -> after, per region/estimator (mask = the edit's skin mask; "
        "crop = face-box crops); mask/pos is the estimator optimised through"
    )
    try:
        for name in args.clips.split(","):
            clip_figures(data / name, tmp, not args.no_physnet)
        if not args.no_720p:
            speed_720p(data / "intel_asl_book.mp4", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
