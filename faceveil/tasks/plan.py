"""Planning a video: probe it (demux only), cut it into detection chunks so every worker has work,
and choose the pieces it is encoded in."""

from __future__ import annotations

import math

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import Chunk, MediaItem, VideoPlan
from faceveil.pipeline.places import check_size, locations, out_rel, scratch
from faceveil.storage.media import MediaError, VideoInfo, probe_video


def plan_chunks(n_frames: int, fps: float, config: AnonymizeConfig) -> list[Chunk]:
    """Splits a video into contiguous chunks (no frame dropped or repeated) so that every worker
    has work: about n_frames / workers each, kept within [min_chunk_seconds, chunk_seconds]."""
    fps = fps if fps > 0 else 25.0
    per = math.ceil(n_frames / config.cluster.n_workers)
    per = int(min(max(per, config.encoding.min_chunk_seconds * fps), config.encoding.chunk_seconds * fps))
    per = max(per, 1)
    return [Chunk(i, s, min(s + per, n_frames)) for i, s in enumerate(range(0, n_frames, per))]


def plan_video(config: AnonymizeConfig, item: MediaItem) -> VideoPlan:
    """Probes the video (demux only) and cuts it into chunks; bad input gives the reason."""
    src, _ = locations(config)
    try:
        check_size(config, item)
        with src.local_file(item.rel, scratch(config)) as local:
            info = probe_video(local, max_pixels=config.encoding.max_pixels)
    except MediaError as e:
        return VideoPlan(error=e.reason)
    return VideoPlan(info, plan_chunks(info.n_frames, info.fps, config))


def segments_of(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, chunks: list[Chunk]) -> list[Chunk]:
    """The pieces the video is encoded in, side by side: its detection chunks, or the whole video in
    one piece when one writer must see every frame (a vault, the identity index; identity replacement,
    whose one surrogate per track is made from the track's first face) or avi cannot be joined by
    timestamps."""
    one_writer = config.sealed or config.sealing.index or config.masking.method == "replace"
    if one_writer or len(chunks) < 2 or out_rel(config, item.rel).lower().endswith(".avi"):
        return [Chunk(0, 0, info.n_frames)]
    return chunks
