"""The pulse task (`--pulse scrub|target:BPM`): between tracking and encoding, per video. Decodes the
frames once, anonymizes them as the encoder will (a replaced face carries its own skin), collects
each track's skin-mean RGB trace, plans the per-frame offsets that scrub or retarget its pulse
(models/rppg/edit.py), and hands them on with the tracks; the encoder applies them inside the skin
masks (pipeline/pulse.PulseApplier). What it carries is small: 3 float32 per face per frame."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import MediaItem, PulseEdit, Tracked
from faceveil.pipeline.places import locations, scratch
from faceveil.pipeline.protect import protect_frame
from faceveil.pipeline.pulse import readings, region_readings, sample, skin_of
from faceveil.pipeline.toolkit import toolkit
from faceveil.storage.media import MediaError, VideoInfo, iter_frames


def pulse_video(config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked) -> Tracked:
    """`tracked` with its PulseEdit (unchanged without --pulse or after an error; a read error is the
    media's error)."""
    from faceveil.models.rppg.edit import PulseSettings, cell_offsets, skin_trace
    from faceveil.models.rppg.regions import REGIONS
    from faceveil.models.rppg.skin import N_CELLS

    settings = PulseSettings.parse(config.settings.pulse)
    if tracked.error or settings is None:
        return tracked
    t0 = time.perf_counter()
    try:
        traces = _traces(config, item, info, tracked, shares=settings.mode == "target")
    except MediaError as e:
        return replace(tracked, error=e.reason)
    edit = PulseEdit(settings.spec())
    for tid, per in sorted(traces.items()):
        first, last = min(per), max(per)
        t = last - first + 1
        cells, counts = np.full((t, N_CELLS, 3), np.nan), np.zeros((t, N_CELLS))
        means, shares = np.full((t, len(REGIONS), 3), np.nan), np.zeros((t, len(REGIONS), N_CELLS), np.float32)
        for f, (cm, n, smp, _, sh) in per.items():
            cells[f - first], counts[f - first] = cm, n
            means[f - first] = np.stack([smp[k] for k in REGIONS])
            if sh is not None:
                shares[f - first] = sh
        delta = cell_offsets(cells, counts, info.fps, settings, (means, shares))  # used by target only
        trace = skin_trace(cells, counts)
        planned = skin_trace(cells + delta, counts)
        mesh = sum(v[3] == "mesh" for v in per.values())
        edit.set(tid, first, delta)
        edit.tracks.append(
            {
                "track_id": tid,
                "first_frame": first,
                "last_frame": last,
                "n_frames": len(per),
                "optimised": settings.estimator if settings.mode == "target" else "none (scrub)",
                "before": readings(trace, info.fps),
                "planned": readings(planned, info.fps),
                "regions": region_readings({f: v[2] for f, v in per.items()}, first, last, info.fps),
                "skin": f"face mesh in {mesh} of {len(per)} frames, landmark polygons in the rest",
            }
        )
    edit.seconds = time.perf_counter() - t0
    return replace(tracked, pulse=edit, seconds=tracked.seconds + edit.seconds)


def _traces(
    config: AnonymizeConfig, item: MediaItem, info: VideoInfo, tracked: Tracked, shares: bool = True
) -> dict[int, dict[int, tuple]]:
    """track id -> frame -> (each skin cell's mean RGB (N_CELLS, 3), its pixel count (N_CELLS,), what the
    checks read (pipeline/pulse.sample), the skin's source, each attacker region's share of pixels in each
    cell (regions.cell_shares; None without `shares`: a scrub does not use them)), on the frames as the
    encoder will have them."""
    from faceveil.models.rppg.regions import cell_shares

    kit = toolkit(config.settings)
    src, _ = locations(config)
    wanted = {f for f, d in tracked.per_frame.items() if (d.track_ids >= 0).any()}
    out: dict[int, dict[int, tuple]] = {}
    if not wanted:
        return out
    with src.local_file(item.rel, scratch(config)) as local:
        for i, rgb in iter_frames(local, info, min(wanted), max(wanted) + 1, select=wanted.__contains__):
            dets = tracked.per_frame[i]
            if config.settings.method != "keep":
                protect_frame(kit.anonymizer, rgb, dets, i, item.media_id)
            h, w = rgb.shape[:2]
            for j, tid in enumerate(dets.track_ids.tolist()):
                if tid >= 0 and (r := skin_of(dets, j, h, w, rgb)) is not None:
                    out.setdefault(tid, {})[i] = (
                        *r.cell_means(rgb),
                        sample(rgb, dets, j, r),
                        r.source,
                        cell_shares(r, h, w, dets.boxes[j], dets.landmarks[j]) if shares else None,
                    )
    return out
