"""Arrow schemas of the manifests, defined once, and their Parquet reading and writing.

Layout under the archive's state root: `<table>/<key>.parquet`, one part file per media (or per run), so a
re-run overwrites its own part instead of appending: no row is ever duplicated, and each part is
committed atomically.
Over 300 lines: the schemas, defined once in one place, are most of it."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.models.detections import Detections
from faceveil.storage.paths import Location

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("src", pa.string()),
        ("dest", pa.string()),
        ("settings_json", pa.string()),
        ("faceveil_version", pa.string()),
        ("n_media", pa.int64()),
        ("n_ok", pa.int64()),
        ("n_failed", pa.int64()),
        ("n_skipped", pa.int64()),
        ("status", pa.string()),
    ]
)

MEDIA = pa.schema(
    [
        ("media_id", pa.string()),
        ("rel_path", pa.string()),
        ("kind", pa.string()),
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("frames_in", pa.int64()),
        ("frames_out", pa.int64()),
        ("duration_in_s", pa.float64()),
        ("duration_out_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("rotation", pa.int32()),
        ("has_audio_in", pa.bool_()),
        ("has_audio_out", pa.bool_()),
        ("streams_in", pa.string()),
        ("streams_out", pa.string()),
        ("notes", pa.list_(pa.string())),
        ("input_fingerprint", pa.string()),
        ("input_sha256", pa.string()),
        ("output_sha256", pa.string()),
        ("output_path", pa.string()),
        ("detector", pa.string()),
        ("detector_weights", pa.string()),
        # where the media's detection ran: "cuda" or "cpu" (null: failed before, or older rows)
        ("device", pa.string()),
        ("method", pa.string()),
        ("settings_json", pa.string()),
        ("work_hash", pa.string()),  # pipeline/work_hash: settings, version and weights (was "settings_hash")
        ("n_faces", pa.int64()),
        ("n_tracks", pa.int64()),
        ("frames_with_faces", pa.int64()),
        ("frames_filled", pa.int64()),
        ("frames_redacted", pa.int64()),
        ("seconds", pa.float64()),
        ("vault_entries", pa.int64()),
        ("vault_bytes", pa.int64()),
        ("key_fingerprint", pa.string()),
        ("vault_keys_sha256", pa.string()),  # the vault key part as its run wrote it (sealed: storage/vault.seal_part)
        ("faces_forgotten", pa.int64()),  # faces of forgotten people (tombstones): anonymized, never sealed
        ("quarantine_path", pa.string()),
        ("leak_frames", pa.list_(pa.int64())),
    ]
)

DETECTIONS = pa.schema(
    [
        ("media_id", pa.string()),
        ("frame_index", pa.int64()),
        ("pts", pa.int64()),
        ("time_s", pa.float64()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("score", pa.float32()),
        ("landmarks", pa.list_(pa.float32(), 10)),
        ("track_id", pa.int64()),
        ("filled", pa.bool_()),
    ]
)

TRACKS = pa.schema(
    [
        ("media_id", pa.string()),
        ("track_id", pa.int64()),
        ("first_frame", pa.int64()),
        ("last_frame", pa.int64()),
        ("n_frames", pa.int64()),
        ("n_detected", pa.int64()),
        ("n_filled", pa.int64()),
        ("mean_score", pa.float32()),
        ("max_size", pa.float32()),
    ]
)

# The vault: one row per original face region per frame, sealed (AES-256-GCM, lossless PNG inside) under
# its track's data key, with (media, frame, track, box, key id) as associated data; one row per track
# key, wrapped for the master key (a shredded key keeps its row: wrapped is null, forgotten_at set).
VAULT_ENTRIES = pa.schema(
    [
        ("media_id", pa.string()),
        ("frame_index", pa.int64()),
        ("track_id", pa.int64()),
        ("x1", pa.int32()),
        ("y1", pa.int32()),
        ("x2", pa.int32()),
        ("y2", pa.int32()),
        ("key_id", pa.string()),
        ("sealed", pa.binary()),
    ]
)

VAULT_KEYS = pa.schema(
    [
        ("key_id", pa.string()),
        ("media_id", pa.string()),
        ("track_id", pa.int64()),
        ("wrapped", pa.binary()),
        ("master_fingerprint", pa.string()),
        ("n_entries", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("forgotten_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Who searched or restored what, why, with which key: one row per file, each MAC-chained to the last.
ACCESS_LOG = pa.schema(
    [
        ("seq", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("actor", pa.string()),
        ("action", pa.string()),
        ("reason", pa.string()),
        ("probe_sha256", pa.string()),
        ("matched", pa.list_(pa.string())),
        ("key_fingerprint", pa.string()),
        ("details_json", pa.string()),
        ("prev_mac", pa.string()),
        ("mac", pa.string()),
        # the forward-secure tag (access_log, log_seal); null before a log key, and in older logs
        ("fs_tag", pa.string()),
    ]
)

# Privacy and utility checks of sampled output frames (faceveil.validation.privacy), per frame, per
# face in those frames, and per media (the track-level identity measures).
CHECK_FRAMES = pa.schema(
    [
        ("media_id", pa.string()),
        ("frame_index", pa.int64()),
        ("faces_in", pa.int64()),
        ("leak_faces", pa.int64()),
        ("leak_max_score", pa.float32()),
        ("leak_boxes", pa.string()),
        ("background_psnr", pa.float64()),
        ("background_ssim", pa.float64()),
    ]
)

CHECK_FACES = pa.schema(
    [
        ("media_id", pa.string()),
        ("frame_index", pa.int64()),
        ("track_id", pa.int64()),
        ("size", pa.float32()),
        ("reid_cosine", pa.float64()),
        ("face_ssim", pa.float64()),
        ("still_face", pa.bool_()),
        ("pose_error", pa.float64()),
    ]
)

CHECK_MEDIA = pa.schema(
    [
        ("media_id", pa.string()),
        ("run_id", pa.string()),
        ("frames_checked", pa.int64()),
        ("identity_stability", pa.float64()),
        ("surrogate_consistency", pa.float64()),
        ("seconds", pa.float64()),
    ]
)

# Identity replacement: which surrogate each track got (its seed names it; a person seen in several
# photos shares one), its identity cosine to the original as put back, and the step of the fallback
# chain that made it (models/fallback.FALLBACKS; null in parts written before the chain).
SURROGATES = pa.schema(
    [
        ("media_id", pa.string()),
        ("track_id", pa.int64()),
        ("surrogate_id", pa.string()),
        ("identity_cosine", pa.float64()),
        ("method", pa.string()),
    ]
)

# The pulse edit (--pulse), per media and track: what the rPPG estimators read before and after (JSON:
# {"before"|"after": {estimator: {"bpm", "snr_db"}}}), the estimator optimised through, the edit's PSNR.
CHECK_PULSE = pa.schema(
    [
        ("media_id", pa.string()),
        ("run_id", pa.string()),
        ("track_id", pa.int64()),
        ("first_frame", pa.int64()),
        ("last_frame", pa.int64()),
        ("n_frames", pa.int64()),
        ("spec", pa.string()),
        ("optimised", pa.string()),
        ("readings_json", pa.string()),
        ("psnr_db", pa.float64()),
        ("measured", pa.bool_()),
    ]
)

# Faces a reviewer added by hand (`faceveil review`): one row per box per frame of each confirmed track,
# with who confirmed it, when and why; a re-run masks them always (forced tracks, storage/manual_tracks).
MANUAL_TRACKS = pa.schema(
    [
        ("media_id", pa.string()),
        ("track_id", pa.int64()),
        ("frame_index", pa.int64()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("seed_frame", pa.int64()),
        ("actor", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
    ]
)

# The deep leak check of published media (`faceveil check`, the check-nightly deployment): one row per
# media, in one part (checks/deep.parquet, replaced whole); a media is checked again once its output changes
# (its manifest SHA-256 or its file's fingerprint); output_sha256 is the checked file's own.
DEEP_CHECKS = pa.schema(
    [
        ("media_id", pa.string()),
        ("rel_path", pa.string()),
        ("status", pa.string()),
        ("output_sha256", pa.string()),
        ("output_fingerprint", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("frames_asked", pa.int64()),
        ("frames_checked", pa.int64()),
        ("faces_checked", pa.int64()),
        ("leaks", pa.int64()),
        ("upper_95", pa.float64()),
        ("leak_frames", pa.list_(pa.int64())),
        ("leak_boxes", pa.string()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
    ]
)

TABLES = {
    "runs": RUNS,
    "media": MEDIA,
    "detections": DETECTIONS,
    "tracks": TRACKS,
    "vault/entries": VAULT_ENTRIES,
    "vault/keys": VAULT_KEYS,
    "access_log": ACCESS_LOG,
    "checks/frames": CHECK_FRAMES,
    "checks/faces": CHECK_FACES,
    "checks/media": CHECK_MEDIA,
    "surrogates": SURROGATES,
    "checks/pulse": CHECK_PULSE,
    "review/manual_tracks": MANUAL_TRACKS,
    "checks": DEEP_CHECKS,
}


def part_path(table: str, key: str) -> str:
    """A part's path in the archive's state root."""
    return f"{table}/{key}.parquet"


def write_part(loc: Location, table: str, key: str, rows: pa.Table | list[dict]) -> str:
    """Writes (replaces) one part of `table`, validated against its schema; the SHA-256 of its bytes."""
    schema = TABLES[table]
    t = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    t = t.select(schema.names).cast(schema)
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    loc.write_bytes(part_path(table, key), buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


# table -> {old column name: its name now}: parts written before a rename read under the new name
RENAMED = {"media": {"settings_hash": "work_hash"}}
# table -> the folder its parts went to before it was renamed: a part there reads when the table's own
# folder lacks it (archives written before keep their checks; a re-run's new part takes its place)
OLD_TABLES = {f"checks/{t}": f"audit/{t}" for t in ("frames", "faces", "media", "pulse")}


def _read(blob: bytes, table: str) -> pa.Table:
    """One part in its table's schema: renamed columns under their new names, columns it predates null."""
    schema, renamed = TABLES[table], RENAMED.get(table, {})
    t = pq.read_table(io.BytesIO(blob))
    t = t.rename_columns([renamed.get(n, n) for n in t.column_names])
    cols = [t[n] if n in t.column_names else pa.nulls(t.num_rows, schema.field(n).type) for n in schema.names]
    return pa.Table.from_arrays(cols, names=schema.names).cast(schema)  # as a read with the schema casts


def read_part(loc: Location, table: str, key: str) -> pa.Table | None:
    for rel in (part_path(name, key) for name in (table, OLD_TABLES.get(table)) if name):
        if loc.exists(rel):
            return _read(loc.read_bytes(rel), table)
    return None


def _parts(loc: Location, folder: str) -> dict[str, str]:
    """key -> path of every part in a table's folder (its subfolders' files are no parts of it)."""
    parts = [r for r in loc.list_files(under=folder) if r.count("/") == folder.count("/") + 1]
    return {r[len(folder) + 1 : -len(".parquet")]: r for r in parts if r.endswith(".parquet")}


def read_table(loc: Location, table: str) -> pa.Table:
    """Every part of a table, in its folder's order, with those only its old folder holds (empty table with
    the schema when there is none)."""
    parts = {**(_parts(loc, OLD_TABLES[table]) if table in OLD_TABLES else {}), **_parts(loc, table)}
    tables = [_read(loc.read_bytes(parts[k]), table) for k in sorted(parts, key=lambda k: part_path(table, k))]
    return pa.concat_tables(tables) if tables else TABLES[table].empty_table()


def detection_rows(media_id: str, per_frame: dict[int, Detections], frame_pts, frame_time) -> pa.Table:
    """One row per face per frame, columnar."""
    frames = [f for f, d in per_frame.items() if len(d)]
    if not frames:
        return DETECTIONS.empty_table()
    counts = np.array([len(per_frame[f]) for f in frames])
    idx = np.repeat(np.array(frames, np.int64), counts)
    d = Detections.concat([per_frame[f] for f in frames])
    lms = pa.FixedSizeListArray.from_arrays(pa.array(d.landmarks.reshape(-1), pa.float32()), 10)
    return pa.table(
        {
            "media_id": pa.array([media_id] * len(idx), pa.string()),
            "frame_index": idx,
            "pts": np.asarray([frame_pts(f) for f in idx], np.int64),
            "time_s": np.asarray([frame_time(f) for f in idx], np.float64),
            "x1": d.boxes[:, 0],
            "y1": d.boxes[:, 1],
            "x2": d.boxes[:, 2],
            "y2": d.boxes[:, 3],
            "score": d.scores,
            "landmarks": lms,
            "track_id": d.track_ids,
            "filled": d.filled,
        },
        schema=DETECTIONS,
    )


def track_rows(media_id: str, detections: pa.Table) -> pa.Table:
    """One row per track, summarised from the detection rows (untracked faces, id -1, have none)."""
    df = detections.to_pandas()
    df = df[df.track_id >= 0]
    if df.empty:
        return TRACKS.empty_table()
    df["size"] = np.sqrt((df.x2 - df.x1) * (df.y2 - df.y1))
    g = df.groupby("track_id")
    n_frames = g.size().to_numpy(np.int64)
    n_filled = g.filled.sum().to_numpy(np.int64)
    return pa.table(
        {
            "media_id": pa.array([media_id] * g.ngroups, pa.string()),
            "track_id": np.asarray(g.size().index, np.int64),
            "first_frame": g.frame_index.min().to_numpy(np.int64),
            "last_frame": g.frame_index.max().to_numpy(np.int64),
            "n_frames": n_frames,
            "n_detected": n_frames - n_filled,
            "n_filled": n_filled,
            "mean_score": g.score.mean().to_numpy(np.float32),
            "max_size": g["size"].max().to_numpy(np.float32),
        },
        schema=TRACKS,
    )
