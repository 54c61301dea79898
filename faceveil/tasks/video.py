"""Per-video work: plan chunks, detect faces in a chunk, then track, anonymize and encode."""
from __future__ import annotations

import math
import os
import posixpath
import time
import uuid
from contextlib import nullcontext

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.models.tracking import track_media
from faceveil.storage import manifests
from faceveil.storage.media import MediaError, VideoInfo, iter_frames, probe_video, transcode_video
from faceveil.models.detections import Detections
from faceveil.tasks.audit import BesideEncoder, frame_audit
from faceveil.tasks.common import (anonymizer, base_row, clean_up, commit_output, detector, face_finder, leak_verdict,
                                   locations,
                                   media_keepers, outcome, protect_frame, record_failure, scratch, streams_json,
                                   track_templates, vault_fields, write_media_manifests)
from faceveil.tasks.jobs import Chunk, ChunkDetections, MediaItem, MediaResult, VideoPlan


def check_size(config: AnonymizeConfig, item: MediaItem) -> None:
    size = int(item.fingerprint.split(":")[0] or 0)
    if size == 0:
        raise MediaError(item.rel, "empty file")
    if size > config.max_bytes:
        raise MediaError(item.rel, f"file too large ({size} bytes > limit {config.max_bytes})")


def plan_chunks(n_frames: int, fps: float, config: AnonymizeConfig) -> list[Chunk]:
    """Splits a video into contiguous chunks (no frame dropped or repeated) so that every worker
    has work: about n_frames / workers each, kept within [min_chunk_seconds, chunk_seconds]."""
    fps = fps if fps > 0 else 25.0
    per = math.ceil(n_frames / config.n_workers)
    per = int(min(max(per, config.min_chunk_seconds * fps), config.chunk_seconds * fps))
    per = max(per, 1)
    return [Chunk(i, s, min(s + per, n_frames)) for i, s in enumerate(range(0, n_frames, per))]


def plan_video(config: AnonymizeConfig, item: MediaItem) -> VideoPlan:
    """Probes the video (demux only) and cuts it into chunks; bad input gives the reason."""
    src, _ = locations(config)
    try:
        check_size(config, item)
        with src.local_file(item.rel, scratch(config)) as local:
            info = probe_video(local, max_pixels=config.max_pixels)
    except MediaError as e:
        return VideoPlan(error=e.reason)
    return VideoPlan(info, plan_chunks(info.n_frames, info.fps, config))


def detect_chunk(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunk: Chunk) -> ChunkDetections:
    """Runs the detector on every `step`-th frame of the chunk (and on the video's last frame). On a
    second pass the leak gate's detectors also look at the same frames of the first pass's output."""
    t0 = time.perf_counter()
    out = ChunkDetections(chunk)
    src, dest = locations(config)
    find = face_finder(config)
    step = config.frame_step(info.fps, info.width, info.height)
    wanted = lambda i: i % step == 0 or i == info.n_frames - 1  # noqa: E731
    try:
        with src.local_file(item.rel, scratch(config)) as local, \
                dest.local_file(item.first_output, scratch(config)) if item.first_output else nullcontext() as first:
            seen = iter_frames(first, probe_video(first), chunk.start, chunk.stop, select=wanted) if first else None
            for i, rgb in iter_frames(local, info, chunk.start, chunk.stop, select=wanted):
                out.frames.append(i)
                out.dets.append(find(rgb, next(seen)[1] if seen is not None else None))
    except MediaError as e:
        out.error = e.reason
    out.seconds = time.perf_counter() - t0
    return out


def _sampled(chunks: list[ChunkDetections]):
    for c in sorted(chunks, key=lambda c: c.chunk.start):
        yield from zip(c.frames, c.dets)


def finish_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo,
                 chunks: list[ChunkDetections], run_id: str) -> MediaResult:
    """Tracks across the whole video, anonymizes and encodes it (audio and other streams passed
    through), commits the output atomically and writes its manifests. Fails closed: a chunk that
    failed means no output; a frame the anonymizer fails on is redacted whole."""
    t0 = time.perf_counter()
    src, dest = locations(config)
    if errors := [f"chunk {c.chunk.index} (frames {c.chunk.start}-{c.chunk.stop}): {c.error}" for c in chunks if c.error]:
        return record_failure(config, item, run_id, "; ".join(errors))
    covered = sorted(f for c in chunks for f in range(c.chunk.start, c.chunk.stop))
    if covered != list(range(info.n_frames)):
        return record_failure(config, item, run_id, "internal error: chunks do not cover every frame")
    if config.track:
        per_frame, _ = track_media(_sampled(chunks), info.n_frames, info.width, info.height,
                                   config.tracker_settings(config.frame_step(info.fps, info.width, info.height)))
    else:
        per_frame = {f: d for f, d in _sampled(chunks) if len(d)}
    anon = anonymizer(config.method, config.mask_settings())
    vault, faces = media_keepers(config, item)
    checks = BesideEncoder(frame_audit(config, item.media_id, info.n_frames, info.fps), info.orientation)
    redacted = 0

    def edit(i: int, rgb: np.ndarray) -> np.ndarray:
        nonlocal redacted
        dets = per_frame.get(i)
        if dets is None:
            dets = Detections.empty()
        checks.keep(i, rgb, dets, anon.regions(dets, info.width, info.height))  # the original, if sampled
        if len(dets):
            if faces is not None:
                faces.offer(i, rgb, dets)  # the originals, before they are anonymized
            redacted += protect_frame(anon, rgb, dets, i, item.media_id, vault)
        return rgb

    out_rel = item.rel  # lossless video is FFV1, which only MKV holds: clip.mp4 -> clip.mp4.mkv
    if config.lossless and posixpath.splitext(item.rel)[1].lower() != ".mkv":
        out_rel = item.rel + ".mkv"
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{posixpath.splitext(out_rel)[1]}")
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            res = transcode_video(local, tmp, info, edit, only=per_frame.keys() | checks.audit.frames,
                                  lossless=config.lossless, crf=config.crf, preset=config.preset, tap=checks.tap)
            if res.frames_out != info.n_frames:
                raise MediaError(item.rel, f"encoded {res.frames_out} of {info.n_frames} frames")
            audit = checks.finish()
            withheld = leak_verdict(config, audit)
            in_sha, out_sha = commit_output(dest, tmp, out_rel, local, vault, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        checks.close()
        clean_up(tmp, vault)
    det_rows = manifests.detection_rows(item.media_id, per_frame, lambda f: int(info.frame_pts[f]), info.frame_time)
    filled = det_rows.filter(det_rows["filled"])["frame_index"].to_numpy() if det_rows.num_rows else np.zeros(0)
    base = base_row(config, item, run_id)
    row = {
        **base, **outcome(config, out_rel, withheld, audit),
        "frames_in": info.n_frames, "frames_out": res.frames_out,
        "duration_in_s": res.duration_in_s, "duration_out_s": res.duration_out_s,
        "width": info.width, "height": info.height, "fps": info.fps, "rotation": info.rotation,
        "has_audio_in": info.has_audio, "has_audio_out": any(s.type == "audio" for s in res.streams_out),
        "streams_in": streams_json(info.streams), "streams_out": streams_json(res.streams_out), "notes": base["notes"] + res.notes,
        "input_sha256": in_sha, "output_sha256": out_sha,
        "detector_weights": detector(config.detector, config.detector_settings()).weights_id,
        "n_faces": det_rows.num_rows, "n_tracks": len(set(det_rows["track_id"].to_pylist()) - {-1}),
        "frames_with_faces": len(per_frame), "frames_filled": len(np.unique(filled)),
        "frames_redacted": redacted, "seconds": time.perf_counter() - t0 + sum(c.seconds for c in chunks),
        **vault_fields(vault if not withheld else None),
    }
    templates = track_templates(config, faces, item.media_id, det_rows, info.frame_time) if not withheld else []
    return write_media_manifests(dest, item, det_rows, row, templates, audit)
