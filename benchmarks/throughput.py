"""Throughput on 720p clips with an audio track: a single person (21 s, the shared ASL clips) and a crowd
(20 s: 10 s of the detection set panned and zoomed, ~20-40 faces a frame, then 10 s of the MOT20-05
night crowd scaled up; each half alone on request).
Per clip: (a) decode + encode only (the physical limit here), (b) the `deface` package (CPU) at its
defaults, (c) `faceveil anonymize` at its defaults (the CLI: Prefect flow on a local Dask cluster,
output checks and leak gate on), (e) the same with the per-run output checks off (--check-every 0;
contracts, report and MLflow still run) and, on the single-person clip, (d) --reversible (vault of
sealed originals) with vault bytes per face-frame. Prints frames per second, c/a, c/b (target >= 3 on
every clip) and how each default run ended (published, after the leak gate's second pass, withheld);
deface's recall on the detection set beside ours; and peak memory of one worker processing the 139 s
clip against a 10 s cut of it. With --scope head|person also (f): defaults at that --scope, and f/c.
With --tls-cost only: the local Dask cluster's TLS against plain TCP
(FACEVEIL_DASK_TLS=0) on the first clip (default 6 s), plain and --reversible, interleaved runs.

    .venv/bin/python benchmarks/throughput.py [--clips single,crowd,moving,mot20] [--seconds S] [--skip-deface]
                                              [--skip-memory] [--repeat 3] [--scope head] [--tls-cost]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from common import ground_truth, matched, shared_data
from crowd import crowd_clip, moving_crowd, mot20_720p

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from private import private  # noqa: E402

BIN = Path(sys.executable).parent


def build_720p(dst: Path, seconds: float, fps: int = 30) -> int:
    """Concatenates the ASL webcam clips (640x480), scaled into 1280x720, with a tone as audio."""
    clips = sorted((shared_data() / "video").glob("intel_asl_*.mp4"))
    n_target, n = int(seconds * fps), 0
    rate = 48000
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = 1280, 720, "yuv420p"
        aus = out.add_stream("aac", rate=rate, layout="stereo")
        sample = 0
        while n < n_target:
            for clip in clips:
                with av.open(str(clip)) as c:
                    for f in c.decode(video=0):
                        if n >= n_target:
                            break
                        rgb = cv2.resize(f.to_ndarray(format="rgb24"), (960, 720), interpolation=cv2.INTER_LINEAR)
                        frame = np.zeros((720, 1280, 3), np.uint8)
                        frame[:, 160:1120] = rgb
                        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                        vf.pts, vf.time_base = n, Fraction(1, fps)
                        out.mux(vs.encode(vf))
                        n += 1
                        while sample + 1024 <= n * rate // fps:
                            t = (sample + np.arange(1024)) / rate
                            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                            af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                            af.sample_rate, af.pts, af.time_base = rate, sample, Fraction(1, rate)
                            out.mux(aus.encode(af))
                            sample += 1024
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    return n


def timed(cmd: list[str], env=None, ok=(0,)) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if r.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def decode_encode_only(clip: Path, work: Path) -> float:
    from faceveil.storage.media import probe_video, transcode_video

    work.mkdir(parents=True, exist_ok=True)
    info = probe_video(str(clip))
    t0 = time.perf_counter()
    transcode_video(str(clip), str(work / "copy.mp4"), info, lambda i, rgb: rgb)
    return time.perf_counter() - t0


def deface_recall() -> float:
    """deface's own CenterFace wrapper at its default threshold (0.2) on the detection set."""
    from deface.centerface import CenterFace

    cf = CenterFace()
    hits = total = 0
    for path, g in ground_truth().items():
        dets, _ = cf(np.asarray(Image.open(path).convert("RGB")), threshold=0.2)
        hits += matched(g["boxes"], dets[:, :4])
        total += len(g["boxes"])
    return hits / total


def faceveil_recall() -> float:
    from faceveil.models.detectors import create_detector

    det = create_detector()
    hits = total = 0
    for path, g in ground_truth().items():
        hits += matched(g["boxes"], det.detect(np.asarray(Image.open(path).convert("RGB"))).boxes)
        total += len(g["boxes"])
    return hits / total


def vault_figures(dest: Path) -> dict:
    import pyarrow.parquet as pq

    t = pq.read_table(private(dest) / "vault" / "entries").to_pandas()
    files = sum(p.stat().st_size for p in (private(dest) / "vault").rglob("*") if p.is_file())
    area = ((t.x2 - t.x1) * (t.y2 - t.y1)).mean() if len(t) else 0
    return {"entries": len(t), "bytes": files, "mean_region_px": float(np.sqrt(area))}


PEAK_RSS = r"""
import resource, sys, json
from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import MediaItem
from faceveil.tasks.plan import plan_video
from faceveil.tasks.detect import detect_chunk, track_video
from faceveil.tasks.finish_video import finish_video
from faceveil.storage.paths import Location
src, rel, dest = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = AnonymizeConfig.of(src=src, dest=dest, workers=1)
item = MediaItem(rel, "video", Location(src).fingerprint(rel))
plan = plan_video(cfg, item)
chunks = [detect_chunk(cfg, item, plan.info, c) for c in plan.chunks]
res = finish_video(cfg, item, plan.info, track_video(cfg, item, plan.info, chunks), "bench")
print(json.dumps({"frames": plan.info.n_frames, "seconds": plan.info.duration_s, "chunks": len(plan.chunks),
                  "status": res.row["status"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_memory(work: Path) -> None:
    long = shared_data() / "video" / "intel_one_by_one_person_detection.mp4"
    short_dir = work / "mem_short"
    short_dir.mkdir()
    with av.open(str(long)) as c, av.open(str(short_dir / "cut.mp4"), "w") as out:  # first 10 s, re-encoded
        s = c.streams.video[0]
        o = out.add_stream("libx264", rate=s.average_rate, options={"crf": "18", "preset": "veryfast"})
        o.width, o.height, o.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        for i, f in enumerate(c.decode(s)):
            if i >= int(10 * float(s.average_rate)):
                break
            nf = av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24")
            nf.pts, nf.time_base = i, 1 / s.average_rate
            out.mux(o.encode(nf))
        out.mux(o.encode(None))
    figures = {}
    for label, src, rel in (("10 s cut", short_dir, "cut.mp4"), ("139 s clip", long.parent, long.name)):
        r = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(src), rel, str(work / f"mem_out_{len(figures)}")],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "2"},
        )
        if r.returncode != 0:
            sys.exit(f"memory run failed: {r.stderr[-3000:]}")
        figures[label] = json.loads(r.stdout.strip().splitlines()[-1])
    print("\n== peak memory of one worker (plan + detect + track + encode, one process) ==")
    for label, f in figures.items():
        print(
            f"{label:11} {f['frames']:5d} frames {f['seconds']:7.1f} s  peak RSS {f['peak_rss_mb']:7.1f} MB  ({f['status']})"
        )
    ratio = figures["139 s clip"]["peak_rss_mb"] / figures["10 s cut"]["peak_rss_mb"]
    print(f"ratio 139 s / 10 s: {ratio:.2f}x (target <= 1.2x)")


def outcome(dest: Path) -> str:
    """How the run ended for its one media: published, published after the leak gate's second pass, or withheld."""
    import pyarrow.parquet as pq

    rows = pq.read_table(private(dest) / "media").to_pylist()
    second = any("second pass" in n for r in rows for n in (r.get("notes") or []))
    status = ",".join(sorted({r["status"] for r in rows}))
    return status + (" after the second pass" if second else "")


CLIPS = {
    "single": ("single person, ASL clips in 720p", lambda dst, s: build_720p(dst, s), 21.0),
    "crowd": ("crowd: the detection set panned and zoomed, then the MOT20-05 night crowd", crowd_clip, 20.0),
    "moving": (
        "moving crowd alone (detection set panned and zoomed)",
        lambda dst, s: moving_crowd(dst, seconds=s)["frames"],
        10.0,
    ),
    "mot20": ("MOT20-05 night crowd alone, in 720p", lambda dst, s: mot20_720p(dst, seconds=s), 10.0),
}


def bench_clip(key: str, work: Path, args, env: dict, key_file: Path) -> dict:
    """(a), (b), (c), (e) on one clip, and (d) on the single-person clip; medians of interleaved runs."""
    label, build, seconds = CLIPS[key]
    src = work / key / "src"
    src.mkdir(parents=True)
    clip = src / f"{key}_720p.mp4"
    n = build(clip, args.seconds or seconds)
    with av.open(str(clip)) as c:
        info_fps = float(c.streams.video[0].average_rate)
    print(f"\n== {label}: {clip.name} {n} frames, 1280x720, {info_fps:g} fps, {n / info_fps:.1f} s, with AAC audio ==")
    res = {"frames": n, "a": n / decode_encode_only(clip, work / key)}
    if not args.skip_deface:
        res["b"] = n / timed([str(BIN / "deface"), str(clip), "-o", str(work / key / "deface.mp4")])
    walls, walls_off, walls_rev, walls_scope, flows, ends = [], [], [], [], [], []
    for i in range(args.repeat):  # interleaved, medians: this machine's timings vary by ~10%
        out = work / key / f"fv{i}"
        walls.append(timed([str(BIN / "faceveil"), "anonymize", str(src), str(out), "--quiet"], env, ok=(0, 1)))
        flows.append(json.loads((private(out) / "summary.json").read_text())["seconds"])
        ends.append(outcome(out))
        walls_off.append(
            timed(
                [
                    str(BIN / "faceveil"),
                    "anonymize",
                    str(src),
                    str(work / key / f"fv_off{i}"),
                    "--quiet",
                    "--check-every",
                    "0",
                ],
                env,
            )
        )
        if args.scope:
            walls_scope.append(
                timed(
                    [
                        str(BIN / "faceveil"),
                        "anonymize",
                        str(src),
                        str(work / key / f"fv_scope{i}"),
                        "--quiet",
                        "--scope",
                        args.scope,
                    ],
                    env,
                    ok=(0, 1),
                )
            )
        if key == "single":
            walls_rev.append(
                timed(
                    [
                        str(BIN / "faceveil"),
                        "anonymize",
                        str(src),
                        str(work / key / f"fv_rev{i}"),
                        "--quiet",
                        "--reversible",
                        "--key",
                        str(key_file),
                    ],
                    env,
                )
            )
    print(
        f"faceveil wall times (s): defaults {[round(w, 1) for w in walls]} ({'; '.join(ends)}), "
        f"checks off {[round(w, 1) for w in walls_off]}"
        + (f", reversible {[round(w, 1) for w in walls_rev]}" if walls_rev else "")
        + (f", --scope {args.scope} {[round(w, 1) for w in walls_scope]}" if walls_scope else "")
    )
    res["c"], res["flow"] = n / float(np.median(walls)), n / float(np.median(flows))
    res["e"] = n / float(np.median(walls_off))
    if walls_rev:
        res["d"] = n / float(np.median(walls_rev))
        res["vault"] = vault_figures(work / key / "fv_rev0")
    if walls_scope:
        res["f"] = n / float(np.median(walls_scope))
    res["ends"] = ends
    return res


def tls_cost(key: str, work: Path, args, env: dict, key_file: Path) -> None:
    """`faceveil anonymize` on one clip with the local cluster on tls:// (the default) and on plain
    tcp:// (FACEVEIL_DASK_TLS=0), plain and --reversible (embeddings and sealed crops cross between
    processes), interleaved in alternating order; medians of the wall time and the flow's own time."""
    label, build, _ = CLIPS[key]
    src = work / key / "src"
    src.mkdir(parents=True)
    n = build(src / f"{key}_720p.mp4", args.seconds or 6.0)
    modes = {"defaults": [], "reversible": ["--reversible", "--key", str(key_file)]}
    times = {(m, tls): ([], []) for m in modes for tls in ("tls", "tcp")}
    for i in range(args.repeat):
        for mode, flags in modes.items():
            for tls in ("tls", "tcp") if i % 2 == 0 else ("tcp", "tls"):
                out = work / key / f"{mode}-{tls}-{i}"
                wall = timed(
                    [str(BIN / "faceveil"), "anonymize", str(src), str(out), "--quiet", *flags],
                    {**env, "FACEVEIL_DASK_TLS": "1" if tls == "tls" else "0"},
                    ok=(0, 1),
                )
                times[mode, tls][0].append(wall)
                times[mode, tls][1].append(json.loads((private(out) / "summary.json").read_text())["seconds"])
    print(f"\n== the local Dask cluster's TLS cost: {label}, {n} frames, {args.repeat} runs each (medians, s) ==")
    print(f"{'mode':11} {'wall tls':>9} {'wall tcp':>9} {'flow tls':>9} {'flow tcp':>9} {'flow tls/tcp':>13}")
    for mode in modes:
        (wt, ft), (wp, fp) = times[mode, "tls"], times[mode, "tcp"]
        print(
            f"{mode:11} {np.median(wt):9.2f} {np.median(wp):9.2f} {np.median(ft):9.2f} {np.median(fp):9.2f} "
            f"{np.median(ft) / np.median(fp):13.3f}"
        )
        print(
            f"{'':11} all runs: wall tls {[round(w, 1) for w in wt]}, tcp {[round(w, 1) for w in wp]}; "
            f"flow tls {[round(f, 1) for f in ft]}, tcp {[round(f, 1) for f in fp]}"
        )


def report(key: str, r: dict) -> None:
    print(f"\n== throughput, {CLIPS[key][0]} (frames per second) ==")
    rows = [
        ("(a) decode + encode only", "a"),
        ("(b) deface 1.5 (defaults)", "b"),
        ("(c) faceveil anonymize (defaults)", "c"),
        ("    flow only (no server/cluster start)", "flow"),
        ("(d) faceveil anonymize --reversible", "d"),
        ("(e) faceveil anonymize --check-every 0", "e"),
        ("(f) faceveil anonymize --scope (given)", "f"),
    ]
    for label, k in rows:
        if k in r:
            print(f"{label:42} {r[k]:8.2f}")
    print(f"c/a = {r['c'] / r['a']:.3f}")
    if "b" in r:
        print(f"c/b = {r['c'] / r['b']:.2f}  (target >= 3)  [{'PASS' if r['c'] / r['b'] >= 3 else 'FAIL'}]")
    print(f"c/e = {r['c'] / r['e']:.3f}  (the output checks' cost: default against none)")
    if "f" in r:
        print(f"f/c = {r['f'] / r['c']:.3f}  (the given --scope against the face scope, same clip)")
    if "d" in r:
        v = r["vault"]
        print(f"d/c = {r['d'] / r['c']:.3f}  (--reversible against plain, same clip)")
        print(
            f"vault: {v['entries']} face-frames sealed, {v['bytes'] / 2**20:.1f} MiB, "
            f"{v['bytes'] / max(v['entries'], 1) / 1024:.1f} KiB per face-frame (mean region {v['mean_region_px']:.0f} px)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--clips", default="single,crowd", help=f"comma-separated, of: {', '.join(CLIPS)} (default: single,crowd)"
    )
    ap.add_argument(
        "--seconds", type=float, default=None, help="clip length (default: 21 s single, 20 s crowd, 10 s the others)"
    )
    ap.add_argument("--skip-deface", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="faceveil runs of each kind (medians are printed)")
    ap.add_argument("--scope", choices=["head", "person"], default=None, help="also time runs at this --scope (f)")
    ap.add_argument(
        "--tls-cost",
        action="store_true",
        help="only: the local cluster with TLS against without, on the first clip (default 6 s)",
    )
    args = ap.parse_args()
    keys = [k.strip() for k in args.clips.split(",") if k.strip()]
    if unknown := [k for k in keys if k not in CLIPS]:
        sys.exit(f"unknown clip(s) {unknown}; choose from {list(CLIPS)}")
    work = Path(tempfile.mkdtemp(prefix="faceveil-bench-"))
    try:
        print(f"{os.cpu_count()} CPU cores")
        env = {"PREFECT_HOME": str(work / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}
        empty = work / "empty"
        empty.mkdir()
        cold = timed([str(BIN / "faceveil"), "anonymize", str(empty), str(work / "warm"), "--quiet"], env)
        print(f"cold start of an empty run (new Prefect database, cluster, server): {cold:.1f} s")
        key_file = work / "bench.key"
        timed([str(BIN / "faceveil"), "keygen", str(key_file)])
        if args.tls_cost:
            tls_cost(keys[0], work, args, env, key_file)
            return
        results = {k: bench_clip(k, work, args, env, key_file) for k in keys}
        for k, r in results.items():
            report(k, r)
        if not args.skip_deface:
            print(
                f"\nrecall at IoU 0.5 on the detection set: faceveil {faceveil_recall():.3f}, deface {deface_recall():.3f}"
            )
        if not args.skip_memory:
            peak_memory(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
