"""Per-video work: plan chunks, detect faces in a chunk, track across the video, then anonymize and
encode it, in one pass or in segments side by side that are joined."""
from __future__ import annotations

import contextlib
import math
import os
import posixpath
import time
import uuid

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.models.tracking import track_media
from faceveil.storage import manifests
from faceveil.storage.media import MediaError, VideoInfo, iter_frames, probe_video, transcode_video
from faceveil.storage.paths import META_DIR
from faceveil.storage.segments import encode_segment as encode_segment_file, join_segments, segment_suffix
from faceveil.validation.privacy import AuditResult
from faceveil.models.detections import Detections
from faceveil.tasks.audit import BesideEncoder, frame_audit
from faceveil.tasks.common import (anonymizer, base_row, clean_up, commit_output, detector, face_finder, leak_verdict,
                                   locations,
                                   media_keepers, outcome, protect_frame, record_failure, scratch, streams_json,
                                   track_templates, vault_fields, write_media_manifests)
from faceveil.tasks.jobs import Chunk, ChunkDetections, MediaItem, MediaResult, Segment, Tracked, VideoPlan


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
    """Runs the detector on every `step`-th frame of the chunk (and on the video's last frame)."""
    t0 = time.perf_counter()
    out = ChunkDetections(chunk)
    src, _ = locations(config)
    find = face_finder(config)
    step = config.frame_step(info.fps, info.width, info.height)
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            for i, rgb in iter_frames(local, info, chunk.start, chunk.stop,
                                      select=lambda i: i % step == 0 or i == info.n_frames - 1):
                out.frames.append(i)
                out.dets.append(find(rgb))
    except MediaError as e:
        out.error = e.reason
    out.seconds = time.perf_counter() - t0
    return out


def _sampled(chunks: list[ChunkDetections]):
    for c in sorted(chunks, key=lambda c: c.chunk.start):
        yield from zip(c.frames, c.dets)


def track_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunks: list[ChunkDetections]) -> Tracked:
    """Links the chunks' detections into tracks across the whole video (gaps filled, ends extended).
    Fails closed: a chunk that failed means no faces to trust, so no output."""
    t0 = time.perf_counter()
    if errors := [f"chunk {c.chunk.index} (frames {c.chunk.start}-{c.chunk.stop}): {c.error}" for c in chunks if c.error]:
        return Tracked(error="; ".join(errors))
    covered = sorted(f for c in chunks for f in range(c.chunk.start, c.chunk.stop))
    if covered != list(range(info.n_frames)):
        return Tracked(error="internal error: chunks do not cover every frame")
    if config.track:
        per_frame, _ = track_media(_sampled(chunks), info.n_frames, info.width, info.height,
                                   config.tracker_settings(config.frame_step(info.fps, info.width, info.height)))
    else:
        per_frame = {f: d for f, d in _sampled(chunks) if len(d)}
    return Tracked(per_frame, seconds=time.perf_counter() - t0 + sum(c.seconds for c in chunks))


def segments_of(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunks: list[Chunk]) -> list[Chunk]:
    """The pieces the video is encoded in, side by side: its detection chunks, or the whole video in
    one piece when one writer must see every frame (a vault, the identity index) or avi cannot be
    joined by timestamps."""
    if config.reversible or config.index or len(chunks) < 2 or _out_rel(config, item.rel).lower().endswith(".avi"):
        return [Chunk(0, 0, info.n_frames)]
    return chunks


def _out_rel(config: AnonymizeConfig, rel: str) -> str:
    """Where the output goes: lossless video is FFV1, which only MKV holds (clip.mp4 -> clip.mp4.mkv)."""
    return rel + ".mkv" if config.lossless and posixpath.splitext(rel)[1].lower() != ".mkv" else rel


class _Anonymizing:
    """The per-frame edit of a video: originals kept for the checks (and the vault and the index
    when the run keeps them), then the faces anonymized in place; fails closed per frame."""

    def __init__(self, config: AnonymizeConfig, item: MediaItem, info: VideoInfo, per_frame: dict, checks,
                 vault=None, faces=None):
        self.item, self.info, self.per_frame, self.checks, self.vault, self.faces = item, info, per_frame, checks, vault, faces
        self.anon = anonymizer(config.method, config.mask_settings())
        self.redacted = 0

    def __call__(self, i: int, rgb: np.ndarray) -> np.ndarray:
        dets = self.per_frame.get(i)
        if dets is None:
            dets = Detections.empty()
        if self.checks.audit.wants(i):  # the original, before it is anonymized
            self.checks.keep(i, rgb, dets, self.anon.regions(dets, self.info.width, self.info.height))
        if len(dets):
            if self.faces is not None:
                self.faces.offer(i, rgb, dets)
            self.redacted += protect_frame(self.anon, rgb, dets, i, self.item.media_id, self.vault)
        return rgb

    def touched(self) -> set[int]:
        """The frames that need the RGB round trip: faces to mask, or checked."""
        return self.per_frame.keys() | self.checks.audit.frames


def finish_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, run_id: str) -> MediaResult:
    """Anonymizes and encodes the whole video in one pass (audio and other streams passed through),
    commits the output atomically, unless the leak gate withholds it, and writes its manifests."""
    t0 = time.perf_counter()
    src, dest = locations(config)
    if tracked.error:
        return record_failure(config, item, run_id, tracked.error)
    vault, faces = media_keepers(config, item)
    checks = BesideEncoder(frame_audit(config, item.media_id, info.n_frames, info.fps), info.orientation)
    edit = _Anonymizing(config, item, info, tracked.per_frame, checks, vault, faces)
    out_rel = _out_rel(config, item.rel)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{posixpath.splitext(out_rel)[1]}")
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            res = transcode_video(local, tmp, info, edit, only=edit.touched(), lossless=config.lossless, crf=config.crf,
                                  preset=config.preset, tap=checks.tap)
            if res.frames_out != info.n_frames:
                raise MediaError(item.rel, f"encoded {res.frames_out} of {info.n_frames} frames")
            audit = checks.finish().result()
            withheld = leak_verdict(config, audit)
            shas = commit_output(dest, tmp, out_rel, local, vault, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        checks.close()
        clean_up(tmp, vault)
    return _finished(config, item, info, tracked, run_id, res, audit, withheld, shas, edit.redacted,
                     time.perf_counter() - t0, vault, faces)


def encode_segment(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, seg: Chunk,
                   run_id: str) -> Segment:
    """Frames [seg.start, seg.stop) anonymized and encoded alone, with their checks; the piece goes to
    DEST/_faceveil/segments/<run>/ (where any worker can read it) for `join_video`."""
    t0 = time.perf_counter()
    out = Segment(seg.index, seg.start, seg.stop)
    if tracked.error:
        out.error = tracked.error
        return out
    src, dest = locations(config)
    share = math.ceil(config.audit_settings().identity_faces * (seg.stop - seg.start) / max(info.n_frames, 1))
    audit = frame_audit(config, item.media_id, info.n_frames, info.fps, frames=range(seg.start, seg.stop),
                        identity_faces=share)
    checks = BesideEncoder(audit, info.orientation, start=seg.start)
    edit = _Anonymizing(config, item, info, tracked.per_frame, checks)
    ext = segment_suffix(posixpath.splitext(_out_rel(config, item.rel))[1], config.lossless)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{ext}")
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            only = {f for f in edit.touched() if seg.start <= f < seg.stop}
            encode_segment_file(local, tmp, info, seg.start, seg.stop, edit, only=only, lossless=config.lossless,
                                crf=config.crf, preset=config.preset, tap=checks.tap)
        out.audit = checks.finish().result()
        out.path = f"{META_DIR}/segments/{run_id}/{item.media_id}-{seg.index:04d}{ext}"
        dest.commit_file(tmp, out.path)
    except MediaError as e:
        out.error = f"segment {seg.index} (frames {seg.start}-{seg.stop}): {e.reason}"
    finally:
        checks.close()
        clean_up(tmp, None)
    out.redacted, out.seconds = edit.redacted, time.perf_counter() - t0
    return out


def join_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, segments: list[Segment],
               run_id: str) -> MediaResult:
    """The segments put together with the input's other streams, committed (unless the leak gate
    withholds the video), and its manifests written. Any failed segment fails the media."""
    t0 = time.perf_counter()
    src, dest = locations(config)
    segments = sorted(segments, key=lambda s: s.start)
    out_rel = _out_rel(config, item.rel)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{posixpath.splitext(out_rel)[1]}")
    try:
        if errors := [s.error for s in segments if s.error] or ([tracked.error] if tracked.error else []):
            return record_failure(config, item, run_id, "; ".join(errors))
        with contextlib.ExitStack() as stack, src.local_file(item.rel, scratch(config)) as local:
            parts = [stack.enter_context(dest.local_file(s.path, scratch(config))) for s in segments]
            res = join_segments(local, tmp, info, parts)
            audit = AuditResult.merge([s.audit for s in segments])
            withheld = leak_verdict(config, audit)
            shas = commit_output(dest, tmp, out_rel, local, None, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        clean_up(tmp, None)
        for s in segments:
            if s.path:
                dest.remove(s.path)
    return _finished(config, item, info, tracked, run_id, res, audit, withheld, shas,
                     sum(s.redacted for s in segments), time.perf_counter() - t0 + sum(s.seconds for s in segments))


def _finished(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, run_id: str, res, audit,
              withheld: str | None, shas: tuple[str, str], redacted: int, seconds: float, vault=None, faces=None) -> MediaResult:
    """The media row and manifests of an encoded video (published or withheld)."""
    _, dest = locations(config)
    per_frame = tracked.per_frame
    det_rows = manifests.detection_rows(item.media_id, per_frame, lambda f: int(info.frame_pts[f]), info.frame_time)
    filled = det_rows.filter(det_rows["filled"])["frame_index"].to_numpy() if det_rows.num_rows else np.zeros(0)
    base = base_row(config, item, run_id)
    row = {
        **base, **outcome(config, _out_rel(config, item.rel), withheld, audit),
        "frames_in": info.n_frames, "frames_out": res.frames_out,
        "duration_in_s": res.duration_in_s, "duration_out_s": res.duration_out_s,
        "width": info.width, "height": info.height, "fps": info.fps, "rotation": info.rotation,
        "has_audio_in": info.has_audio, "has_audio_out": any(s.type == "audio" for s in res.streams_out),
        "streams_in": streams_json(info.streams), "streams_out": streams_json(res.streams_out),
        "notes": base["notes"] + res.notes, "input_sha256": shas[0], "output_sha256": shas[1],
        "detector_weights": detector(config.detector, config.detector_settings()).weights_id,
        "n_faces": det_rows.num_rows, "n_tracks": len(set(det_rows["track_id"].to_pylist()) - {-1}),
        "frames_with_faces": len(per_frame), "frames_filled": len(np.unique(filled)),
        "frames_redacted": redacted, "seconds": seconds + tracked.seconds,
        **vault_fields(vault if not withheld else None),
    }
    templates = track_templates(config, faces, item.media_id, det_rows, info.frame_time) if not withheld else []
    return write_media_manifests(dest, item, det_rows, row, templates, audit)
