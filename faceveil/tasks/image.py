"""Per-image work: detect, anonymize, write in the same format and orientation.
`anonymize_image` is over 60 lines: one image's steps share their state (pixels, detections, vault,
checks) inside one try, and its manifest row lists every column, one a line."""

from __future__ import annotations

import os
import posixpath
import shutil
import time
import uuid


from faceveil.config import AnonymizeConfig
from faceveil.models.detections import overlapping_tracks, with_forced
from faceveil.storage import manifests
from faceveil.storage.media import MediaError, read_image, write_image
from faceveil.pipeline.checks import frame_checks
from faceveil.pipeline.jobs import MediaItem, MediaResult
from faceveil.pipeline.places import check_size, clean_up, locations, scratch, state_of
from faceveil.pipeline.protect import commit_output, leak_verdict, outcome, protect_frame
from faceveil.pipeline.records import (
    base_row,
    media_keepers,
    record_failure,
    track_templates,
    vault_fields,
    write_media_manifests,
)
from faceveil.pipeline.toolkit import toolkit


def anonymize_image(config: AnonymizeConfig, item: MediaItem, run_id: str, people: list | None = None) -> MediaResult:
    """`people`: (box, Surrogate) of faces whose person already has a surrogate (replace; tasks/people)."""
    t0 = time.perf_counter()
    (src, dest), state = locations(config), state_of(config)
    tmp = os.path.join(scratch(config), uuid.uuid4().hex + posixpath.splitext(item.rel)[1])
    vault = None
    try:
        check_size(config, item)
        with src.local_file(item.rel, scratch(config)) as local:
            rgb, meta = read_image(local, max_pixels=config.encoding.max_pixels)
            kit = toolkit(config.settings)
            anon = kit.anonymizer
            dets = with_forced({0: kit.photo_faces(rgb)}, {0: (item.manual or {}).get(0, [])} if item.manual else None)[
                0
            ]
            if config.masking.method == "replace":  # a fresh look (the second pass numbers faces anew), with its people
                anon.expect(item.media_id, people or [])
            vault, faces = media_keepers(config, item, overlapping_tracks({0: dets}, item.forgotten or {}))
            if faces is not None:
                faces.offer(0, rgb, dets)
            checks = frame_checks(kit, item.media_id, 1, 0.0)
            original = rgb.copy() if checks.wants(0) else None
            redacted = int(protect_frame(anon, rgb, dets, 0, item.media_id, vault))
            if config.masking.method == "replace" and not len(
                dets
            ):  # publication: a photo without a face is copied as it is
                shutil.copyfile(local, tmp)
            else:
                write_image(tmp, rgb, meta, lossless=config.encoding.lossless)
            if original is not None:  # checked as written: the output file read back
                w, h = rgb.shape[1], rgb.shape[0]
                checks.add(
                    0,
                    original,
                    read_image(tmp, max_pixels=config.encoding.max_pixels)[0],
                    dets,
                    anon.regions(dets, w, h),
                    anon.face_regions(dets, w, h),
                )
            check_result = checks.result()
            withheld = leak_verdict(config.checks.max_leak, check_result)
            in_sha, out_sha = commit_output(dest, state, tmp, item.rel, local, vault, withheld=bool(withheld))
    except MediaError as e:
        return record_failure(config, item, run_id, e.reason)
    finally:
        clean_up(tmp, vault)
    det_rows = manifests.detection_rows(item.media_id, {0: dets}, lambda f: 0, lambda f: 0.0)
    row = {
        **base_row(config, item, run_id),
        **outcome(item.rel, withheld, check_result),
        "frames_in": 1,
        "frames_out": 1,
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "rotation": 0,
        "has_audio_in": False,
        "has_audio_out": False,
        "input_sha256": in_sha,
        "output_sha256": out_sha,
        "detector_weights": kit.detector.weights_id,
        "device": kit.device,
        "n_faces": len(dets),
        "n_tracks": int((dets.track_ids >= 0).sum()),
        "frames_with_faces": int(len(dets) > 0),
        "frames_filled": 0,
        "frames_redacted": redacted,
        "seconds": time.perf_counter() - t0,
        **vault_fields(vault if not withheld else None),
    }
    if config.masking.method == "replace" and len(dets):  # which surrogate each face got (a person's own, or its own)
        manifests.write_part(
            state,
            "surrogates",
            item.media_id,
            [
                {
                    "media_id": item.media_id,
                    "track_id": int(k),
                    "surrogate_id": f"{s.seed:016x}",
                    "identity_cosine": float(s.cosine),
                    "method": s.method,
                }
                for k, s in sorted(anon.surrogates(item.media_id).items())
            ],
        )
    templates = track_templates(kit, faces, item.media_id, det_rows, lambda f: 0.0) if not withheld else []
    return write_media_manifests(state, item, det_rows, row, templates, check_result)
