"""Finding the faces of a video: the detector over one chunk's frames, then the chunks' detections
linked into tracks across the whole video; and the weights the detector derives (the int8 model) built once,
before a run starts its workers (prepare_models)."""

from __future__ import annotations

import time

from faceveil.config import AnonymizeConfig
from faceveil.models.detections import overlapping_tracks, with_forced
from faceveil.models.device import combine
from faceveil.models.tracking import track_media
from faceveil.pipeline.jobs import ChunkDetections, Chunk, MediaItem, Tracked
from faceveil.pipeline.places import locations, scratch
from faceveil.pipeline.toolkit import toolkit
from faceveil.storage.media import MediaError, VideoInfo, first_field, iter_frames


def detect_chunk(
    config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunk: Chunk, known: ChunkDetections | None = None
) -> ChunkDetections:
    """Runs the detector on every `step`-th frame of the chunk (and on the video's last frame). The
    frames of `known` (this chunk's faces from an earlier pass with the same detectors: the leak
    gate's second pass after the first) are taken from it, not looked at again."""
    t0 = time.perf_counter()
    out = ChunkDetections(chunk)
    src, _ = locations(config)
    kit = toolkit(config.settings)
    find, out.device = kit.find, kit.device
    step = config.settings.frame_step(info.fps, info.width, info.height)
    found = (
        dict(zip(known.frames, known.dets)) if known is not None and known.chunk == chunk and not known.error else {}
    )
    try:
        with src.local_file(item.rel, scratch(config)) as local:
            for i, rgb in iter_frames(
                local,
                info,
                chunk.start,
                chunk.stop,
                select=lambda i: (i % step == 0 or i == info.n_frames - 1) and i not in found,
            ):
                found[i] = find(first_field(rgb, info))  # interlaced: one field, not the combs
    except MediaError as e:
        out.error = e.reason
    out.frames = sorted(found)
    out.dets = [found[i] for i in out.frames]
    out.seconds = time.perf_counter() - t0
    return out


def _sampled(chunks: list[ChunkDetections]):
    for c in sorted(chunks, key=lambda c: c.chunk.start):
        yield from zip(c.frames, c.dets)


def track_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunks: list[ChunkDetections]) -> Tracked:
    """Links the chunks' detections into tracks across the whole video (gaps filled, ends extended).
    Fails closed: a chunk that failed means no faces to trust, so no output."""
    t0 = time.perf_counter()
    if errors := [
        f"chunk {c.chunk.index} (frames {c.chunk.start}-{c.chunk.stop}): {c.error}" for c in chunks if c.error
    ]:
        return Tracked(error="; ".join(errors))
    covered = sorted(f for c in chunks for f in range(c.chunk.start, c.chunk.stop))
    if covered != list(range(info.n_frames)):
        return Tracked(error="internal error: chunks do not cover every frame")
    if config.detection.track:
        per_frame, _ = track_media(
            _sampled(chunks),
            info.n_frames,
            info.width,
            info.height,
            config.settings.for_video(info.fps, info.width, info.height).tracker,
        )
    else:
        per_frame = {f: d for f, d in _sampled(chunks) if len(d)}
    per_frame = with_forced(per_frame, {f: m for f, m in (item.manual or {}).items() if f < info.n_frames})
    return Tracked(
        per_frame,
        seconds=time.perf_counter() - t0 + sum(c.seconds for c in chunks),
        device=combine(c.device for c in chunks),
        forgotten=overlapping_tracks(per_frame, item.forgotten) if item.forgotten else set(),
    )


def prepare_models(config: AnonymizeConfig) -> None:
    """Builds derived weights (the int8 detector) once, in this process, before workers need them."""
    if config.detection.detector == "centerface":
        from faceveil.models.detectors.centerface import prepare

        prepare(config.settings.detector_settings)
