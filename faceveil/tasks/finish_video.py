"""Anonymizing and encoding a video from its tracks: in one pass (`finish_video`), or in segments
side by side (`encode_segment`) that are joined (`join_video`); the output is committed unless the
leak gate withholds it, and the media's manifests are written."""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import time
import uuid

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.models.detections import Detections
from faceveil.pipeline.checks import BesideEncoder, frame_checks
from faceveil.pipeline.jobs import Chunk, MediaItem, MediaResult, Segment, Tracked
from faceveil.pipeline.places import clean_up, locations, out_rel, scratch, state_of
from faceveil.pipeline.protect import commit_output, leak_verdict, outcome, protect_frame
from faceveil.pipeline.pulse import PulseApplier
from faceveil.pipeline.records import (
    base_row,
    media_keepers,
    record_failure,
    streams_json,
    track_templates,
    vault_fields,
    write_media_manifests,
)
from faceveil.pipeline.toolkit import Toolkit, toolkit
from faceveil.storage import manifests
from faceveil.storage.media import MediaError, VideoInfo, transcode_video
from faceveil.storage.segments import encode_segment as encode_segment_file, join_segments, segment_suffix
from faceveil.validation.privacy import CheckResult


class _Anonymizing:
    """The per-frame edit of a video: originals kept for the checks (and the vault and the index
    when the run keeps them), then the faces anonymized in place (fails closed per frame), then the
    pulse edit (`--pulse`) inside the skin of the faces left visible."""

    def __init__(
        self, kit: Toolkit, item: MediaItem, info: VideoInfo, tracked: Tracked, beside, vault=None, faces=None
    ):
        self.item, self.info, self.per_frame, self.beside, self.vault, self.faces = (
            item,
            info,
            tracked.per_frame,
            beside,
            vault,
            faces,
        )
        self.anon = kit.anonymizer
        self.pulse = PulseApplier(tracked.pulse)
        self.redacted = 0

    def __call__(self, i: int, rgb: np.ndarray) -> np.ndarray:
        dets = self.per_frame.get(i)
        if dets is None:
            dets = Detections.empty()
        if self.beside.checks.wants(i):  # the original, before it is anonymized
            w, h = self.info.width, self.info.height
            self.beside.keep(i, rgb, dets, self.anon.regions(dets, w, h), self.anon.face_regions(dets, w, h))
        if len(dets):
            if self.faces is not None:
                self.faces.offer(i, rgb, dets)
            redacted = protect_frame(self.anon, rgb, dets, i, self.item.media_id, self.vault)
            self.redacted += redacted
            if not redacted:
                self.pulse(i, rgb, dets)
        return rgb

    def touched(self) -> set[int]:
        """The frames that need the RGB round trip: faces to mask or pulses to edit, or checked."""
        return self.per_frame.keys() | self.beside.checks.frames | self.pulse.frames()


def finish_video(
    config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, run_id: str
) -> MediaResult:
    """Anonymizes and encodes the whole video in one pass (audio and other streams passed through),
    commits the output atomically, unless the leak gate withholds it, and writes its manifests."""
    t0 = time.perf_counter()
    src, dest = locations(config)
    if tracked.error:
        return record_failure(config, item, run_id, tracked.error)
    kit = toolkit(config.settings)
    vault, faces = media_keepers(config, item, tracked.forgotten)
    checks = BesideEncoder(frame_checks(kit, item.media_id, info.n_frames, info.fps), info.orientation)
    edit = _Anonymizing(kit, item, info, tracked, checks, vault, faces)
    out = out_rel(config, item.rel)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{posixpath.splitext(out)[1]}")
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            res = transcode_video(
                local,
                tmp,
                info,
                edit,
                only=edit.touched(),
                lossless=config.encoding.lossless,
                crf=config.encoding.crf,
                preset=config.encoding.preset,
                tap=checks.tap,
            )
            if res.frames_out != info.n_frames:
                raise MediaError(item.rel, f"encoded {res.frames_out} of {info.n_frames} frames")
            check_result = checks.finish().result()
            withheld = leak_verdict(config.checks.max_leak, check_result)
            shas = commit_output(dest, state_of(config), tmp, out, local, vault, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        checks.close()
        clean_up(tmp, vault)
    if tracked.pulse is not None:
        manifests.write_part(
            state_of(config), "checks/pulse", item.media_id, edit.pulse.rows(item.media_id, run_id, info.fps)
        )
    return _finished(
        config,
        kit,
        item,
        info,
        tracked,
        run_id,
        res,
        check_result,
        withheld,
        shas,
        edit.redacted,
        time.perf_counter() - t0,
        vault,
        faces,
    )


def encode_segment(
    config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, seg: Chunk, run_id: str
) -> Segment:
    """Frames [seg.start, seg.stop) anonymized and encoded alone, with their checks; the piece goes to
    the state root's segments/<run>/ (where any worker can read it) for `join_video`."""
    t0 = time.perf_counter()
    out = Segment(seg.index, seg.start, seg.stop)
    if tracked.error:
        out.error = tracked.error
        return out
    src, state = locations(config)[0], state_of(config)
    kit = toolkit(config.settings)
    share = math.ceil(kit.settings.checks.identity_faces * (seg.stop - seg.start) / max(info.n_frames, 1))
    sampled = frame_checks(
        kit, item.media_id, info.n_frames, info.fps, frames=range(seg.start, seg.stop), identity_faces=share
    )
    checks = BesideEncoder(sampled, info.orientation, start=seg.start)
    edit = _Anonymizing(kit, item, info, tracked, checks)
    ext = segment_suffix(posixpath.splitext(out_rel(config, item.rel))[1], config.encoding.lossless)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{ext}")
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            only = {f for f in edit.touched() if seg.start <= f < seg.stop}
            encode_segment_file(
                local,
                tmp,
                info,
                seg.start,
                seg.stop,
                edit,
                only=only,
                lossless=config.encoding.lossless,
                crf=config.encoding.crf,
                preset=config.encoding.preset,
                tap=checks.tap,
            )
        out.check_result = checks.finish().result()
        out.path = f"segments/{run_id}/{item.media_id}-{seg.index:04d}{ext}"
        state.commit_file(tmp, out.path)
    except MediaError as e:
        out.error = f"segment {seg.index} (frames {seg.start}-{seg.stop}): {e.reason}"
    finally:
        checks.close()
        clean_up(tmp, None)
    out.redacted, out.seconds = edit.redacted, time.perf_counter() - t0
    return out


def join_video(
    config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, segments: list[Segment], run_id: str
) -> MediaResult:
    """The segments put together with the input's other streams, committed (unless the leak gate
    withholds the video), and its manifests written. Any failed segment fails the media. The
    segments stay where they are (the flow removes them once this task's result is in): run again,
    after its worker died, it joins them again."""
    t0 = time.perf_counter()
    (src, dest), state = locations(config), state_of(config)
    segments = sorted(segments, key=lambda s: s.start)
    out = out_rel(config, item.rel)
    tmp = os.path.join(scratch(config), f"{uuid.uuid4().hex}{posixpath.splitext(out)[1]}")
    try:
        if errors := [s.error for s in segments if s.error] or ([tracked.error] if tracked.error else []):
            return record_failure(config, item, run_id, "; ".join(errors))
        with contextlib.ExitStack() as stack, src.local_file(item.rel, scratch(config)) as local:
            parts = [stack.enter_context(state.local_file(s.path, scratch(config))) for s in segments]
            res = join_segments(local, tmp, info, parts)
            check_result = CheckResult.merge([s.check_result for s in segments])
            withheld = leak_verdict(config.checks.max_leak, check_result)
            shas = commit_output(dest, state, tmp, out, local, None, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        clean_up(tmp, None)
    if tracked.pulse is not None:  # segments edit apart: the report gives the planned figures
        rows = PulseApplier(tracked.pulse).rows(item.media_id, run_id, info.fps, measured=False)
        manifests.write_part(state, "checks/pulse", item.media_id, rows)
    return _finished(
        config,
        toolkit(config.settings),
        item,
        info,
        tracked,
        run_id,
        res,
        check_result,
        withheld,
        shas,
        sum(s.redacted for s in segments),
        time.perf_counter() - t0 + sum(s.seconds for s in segments),
    )


def _finished(
    config: AnonymizeConfig,
    kit: Toolkit,
    item: MediaItem,
    info: VideoInfo,
    tracked: Tracked,
    run_id: str,
    res,
    check_result,
    withheld: str | None,
    shas: tuple[str, str],
    redacted: int,
    seconds: float,
    vault=None,
    faces=None,
) -> MediaResult:
    """The media row and manifests of an encoded video (published or withheld)."""
    per_frame = tracked.per_frame
    det_rows = manifests.detection_rows(item.media_id, per_frame, lambda f: int(info.frame_pts[f]), info.frame_time)
    filled = det_rows.filter(det_rows["filled"])["frame_index"].to_numpy() if det_rows.num_rows else np.zeros(0)
    base = base_row(config, item, run_id)
    row = {
        **base,
        **outcome(out_rel(config, item.rel), withheld, check_result),
        "frames_in": info.n_frames,
        "frames_out": res.frames_out,
        "duration_in_s": res.duration_in_s,
        "duration_out_s": res.duration_out_s,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "rotation": info.rotation,
        "has_audio_in": info.has_audio,
        "has_audio_out": any(s.type == "audio" for s in res.streams_out),
        "streams_in": streams_json(info.streams),
        "streams_out": streams_json(res.streams_out),
        "notes": base["notes"] + res.notes + _kept_notes(config, tracked),
        "input_sha256": shas[0],
        "output_sha256": shas[1],
        "detector_weights": kit.detector.weights_id,
        "device": tracked.device,
        "n_faces": det_rows.num_rows,
        "n_tracks": len(set(det_rows["track_id"].to_pylist()) - {-1}),
        "frames_with_faces": len(per_frame),
        "frames_filled": len(np.unique(filled)),
        "frames_redacted": redacted,
        "seconds": seconds + tracked.seconds,
        **vault_fields(vault if not withheld else None),
    }
    templates = track_templates(kit, faces, item.media_id, det_rows, info.frame_time) if not withheld else []
    return write_media_manifests(state_of(config), item, det_rows, row, templates, check_result)


def _kept_notes(config: AnonymizeConfig, tracked: Tracked) -> list[str]:
    """What the media row says about faces left visible on purpose and the pulse edit."""
    notes = (
        ["faces kept visible (--method keep): not anonymized, no leak checks"]
        if config.masking.method == "keep"
        else []
    )
    if tracked.pulse is not None:
        notes.append(f"pulse {tracked.pulse.spec}: {len(tracked.pulse.tracks)} track(s) edited inside their skin masks")
    return notes
