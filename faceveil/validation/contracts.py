"""Data contracts on an archive's manifests: Great Expectations suites defined here in code, run in
an ephemeral context (nothing written, no telemetry). A failed expectation is named with its table,
column and how many rows broke it.
Over 300 lines: the suites (`_suites`) and the data frames they run on (`manifest_frames`,
`public_tree`, `pulse_verdicts`) are one contract, read side by side; `manifest_frames` is over 60
lines: every derived column the expectations check, from the same tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceveil.models.device import DEVICES
from faceveil.storage import manifests
from faceveil.storage.paths import Location
from faceveil.storage.state import relative_to_state
from faceveil.validation.datasheet import PUBLIC_FILES


@dataclass
class ContractReport:
    results: list[dict] = field(default_factory=list)  # {table, expectation, column, success, unexpected}

    @property
    def success(self) -> bool:
        return all(r["success"] for r in self.results)

    @property
    def failures(self) -> list[str]:
        return [
            f"{r['table']}: {r['expectation']}({r['column']}) failed for {r['unexpected']} row(s)"
            for r in self.results
            if not r["success"]
        ]


from faceveil.validation.errors import ContractError  # noqa: E402,F401  (raised by enforce)


def manifest_frames(
    dest: Location, media_ids=None, embeddings: pd.DataFrame | None = None, public: Location | None = None
) -> dict[str, pd.DataFrame]:
    """The manifests in the state root `dest` (of `media_ids`, default all) as data frames, with the
    derived columns the expectations check. `embeddings`: one row per stored identity vector (media_id,
    norm, dim, expected_dim). `public`: DEST, whose every file must be a published output."""

    def table(name):
        df = manifests.read_table(dest, name).to_pandas()
        return df if media_ids is None else df[df.media_id.isin(media_ids)]

    media = table("media")
    if media.empty:  # nothing to check (and pandas cannot join empty Arrow-backed columns)
        return {
            k: pd.DataFrame()
            for k in (
                "media",
                "detections",
                "tracks",
                "ok_media",
                "vault",
                "withheld",
                "checks_frames",
                "checks_faces",
                "embeddings",
                "pulse",
            )
        } | {"public_tree": public_tree(public, media)}
    det = table("detections").join(media.set_index("media_id")[["width", "height", "frames_in"]], on="media_id")
    det["right_room"], det["bottom_room"] = det.width - det.x2, det.height - det.y2
    det["box_width"], det["box_height"] = det.x2 - det.x1, det.y2 - det.y1
    det["frames_after"] = det.frames_in - det.frame_index
    tracked = det[det.track_id >= 0].sort_values(["media_id", "track_id", "frame_index"])
    tracked = tracked.assign(frame_step=tracked.groupby(["media_id", "track_id"]).frame_index.diff().fillna(1))
    ok = media[media.status == "ok"].copy()
    ok["frame_difference"] = ok.frames_out - ok.frames_in
    fps = ok.fps.where(ok.fps > 0, np.nan)
    ok["duration_error_frames"] = ((ok.duration_out_s - ok.duration_in_s).abs() * fps).fillna(0)
    ok["audio_kept"] = ok.has_audio_in.fillna(False) == ok.has_audio_out.fillna(False)
    checked = table("checks/media").set_index("media_id").frames_checked
    ok["frames_checked"] = ok.media_id.map(checked).fillna(0)
    frames = table("checks/frames")  # the leak gate's verdict, per media, from its checked frames
    seen = frames.groupby("media_id")[["leak_faces", "faces_in"]].sum()
    rate = seen.leak_faces / (seen.leak_faces + seen.faces_in).where(lambda n: n > 0, np.nan)
    ok["leak_rate"] = ok.media_id.map(rate.fillna(0)).fillna(0)
    withheld = media[media.status == "leaked"].copy()  # never in the public tree, always in quarantine
    quarantined = [relative_to_state(p) for p in withheld.quarantine_path]  # rows of old archives: _faceveil/...
    if public is not None:
        withheld["public_output"] = [public.exists(p.split("/", 1)[1]) for p in quarantined]
    withheld["quarantined"] = [dest.exists(p) for p in quarantined]
    rev = ok[ok.vault_entries.notna()].copy()
    rev["faces_without_vault_entry"] = rev.n_faces - rev.vault_entries - rev.faces_forgotten.fillna(0)
    emb = embeddings if embeddings is not None else pd.DataFrame(columns=["media_id", "norm", "dim", "expected_dim"])
    emb = emb.assign(
        norm_error=(emb.norm.astype(float) - 1).abs(), dim_error=emb.dim.astype(float) - emb.expected_dim.astype(float)
    )
    return {
        "media": media,
        "detections": det,
        "tracks": tracked,
        "ok_media": ok,
        "vault": rev,
        "withheld": withheld,
        "checks_frames": frames,
        "checks_faces": table("checks/faces"),
        "embeddings": emb,
        "public_tree": public_tree(public, media),
        "pulse": pulse_verdicts(table("checks/pulse")),
    }


def pulse_verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """The pulse edit's tracks whose every attacker region was read after the edit, with the verdict
    (pipeline/pulse.verdict) as `regions_pass`."""
    got = [json.loads(j or "{}").get("regions_pass") for j in rows.get("readings_json", pd.Series(dtype=object))]
    out = rows.assign(regions_pass=pd.Series(got, index=rows.index, dtype=object)) if len(rows) else pd.DataFrame()
    return out[out.regions_pass.notna()].reset_index(drop=True) if len(out) else out


def public_tree(public: Location | None, media: pd.DataFrame, extras=PUBLIC_FILES) -> pd.DataFrame:
    """One row per file in DEST: `published` when it is an ok media's output, a failed media's earlier
    output, or one of `extras` (a published dataset's datasheet); anything else (a restored original, a leftover of a crash, private
    files of an old layout) must not be there."""
    if public is None:
        return pd.DataFrame(columns=["path", "published"])
    known = set(extras)
    if not media.empty:
        known |= set(media[media.status == "ok"].output_path.dropna())
        failed = media[media.status == "failed"].rel_path
        known |= set(failed) | {r + ".mkv" for r in failed}
    files = public.list_files() if public.fs.exists(public.root) else []
    return pd.DataFrame({"path": files, "published": [f in known for f in files]})


def _suites(gx, checked: bool, max_leak: float = 0.0, public: bool = True) -> dict[str, list]:
    E = gx.expectations
    between = E.ExpectColumnValuesToBeBetween
    return {
        "media": [
            E.ExpectColumnValuesToBeUnique(column="media_id"),  # one final status per media
            E.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed", "leaked"]),
            E.ExpectColumnValuesToBeInSet(column="device", value_set=list(DEVICES)),
        ],  # where detection ran (null: never ran)
        "detections": [between(column=c, min_value=0) for c in ("x1", "y1", "right_room", "bottom_room")]
        + [
            between(column="score", min_value=0, max_value=1),
            between(column="box_width", min_value=0, strict_min=True),
            between(column="box_height", min_value=0, strict_min=True),
            between(column="frame_index", min_value=0),
            between(column="frames_after", min_value=1),
        ],
        # a track holds one box per frame, on contiguous frames (the tracker fills its gaps)
        "tracks": [
            E.ExpectCompoundColumnsToBeUnique(column_list=["media_id", "track_id", "frame_index"]),
            between(column="frame_step", min_value=1, max_value=1),
        ],
        "ok_media": [
            between(column="frame_difference", min_value=0, max_value=0),
            between(column="duration_error_frames", min_value=0, max_value=1.001),
            E.ExpectColumnValuesToBeInSet(column="audio_kept", value_set=[True]),
        ]
        + (
            [
                between(column="frames_checked", min_value=1),  # checked, and the leak gate let it through
                between(column="leak_rate", min_value=0, max_value=max_leak),
            ]
            if checked
            else []
        ),
        "withheld": [E.ExpectColumnValuesToBeInSet(column="quarantined", value_set=[True])]
        + ([E.ExpectColumnValuesToBeInSet(column="public_output", value_set=[False])] if public else []),
        "public_tree": [E.ExpectColumnValuesToBeInSet(column="published", value_set=[True])],
        "vault": [between(column="faces_without_vault_entry", min_value=0, max_value=0)],
        "checks_frames": [
            between(column="leak_faces", min_value=0),
            between(column="faces_in", min_value=0),
            between(column="leak_max_score", min_value=0, max_value=1),
            between(column="background_ssim", min_value=-1, max_value=1, mostly=1.0),
        ],
        "checks_faces": [
            between(column="reid_cosine", min_value=-1.0001, max_value=1.0001),
            between(column="face_ssim", min_value=-1, max_value=1),
        ],
        "embeddings": [
            between(column="norm_error", min_value=0, max_value=1e-3),
            between(column="dim_error", min_value=0, max_value=0),
        ],
        # --pulse: no region (mask, face box, forehead, cheeks, neck) shows a heart rate the edit did not put there
        "pulse": [E.ExpectColumnValuesToBeInSet(column="regions_pass", value_set=[True])],
    }


def _validate(frames: dict[str, pd.DataFrame], suites: dict[str, list], gx) -> ContractReport:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = ctx.data_sources.add_pandas("faceveil_manifests")
    report = ContractReport()
    for table, expectations in suites.items():
        df = frames[table]
        if df.empty:
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=f"faceveil_{table}", expectations=expectations)
        res = batch.get_batch(batch_parameters={"dataframe": df}).validate(suite)
        for r in res.results:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list") or [])
            report.results.append(
                {
                    "table": table,
                    "expectation": cfg.type,
                    "column": column,
                    "success": bool(r.success),
                    "unexpected": int(r.result.get("unexpected_count") or 0),
                }
            )
    return report


def _gx():
    from faceveil.offline import set_offline_env

    set_offline_env()
    import logging

    import great_expectations as gx

    for name in ("great_expectations", "great_expectations.data_context.types.base"):  # the second sets its own level
        logging.getLogger(name).setLevel(logging.WARNING)
    return gx


def check_manifests(
    dest: Location,
    media_ids=None,
    embeddings: pd.DataFrame | None = None,
    checked: bool = True,
    max_leak: float = 0.0,
    public: Location | None = None,
) -> ContractReport:
    """Runs every suite on the archive's manifests in the state root `dest` (of `media_ids`, default
    all). `checked`: every finished media must have privacy checks, and its leak gate rate be at most
    `max_leak`. `public`: DEST, which must hold published outputs only. The same manifests checked
    by the same suites give the same result: it is kept in the state root (CHECKED) and reused,
    without loading Great Expectations (a rerun with nothing new)."""
    frames = manifest_frames(dest, media_ids, embeddings, public)
    key = _fingerprint(frames, checked, max_leak, public is not None)
    if key is not None and dest.exists(CHECKED):
        kept = json.loads(dest.read_bytes(CHECKED))
        if kept.get("fingerprint") == key:
            return ContractReport(kept["results"])
    gx = _gx()
    report = _validate(frames, _suites(gx, checked, max_leak, public is not None), gx)
    if key is not None:
        dest.write_bytes(CHECKED, json.dumps({"fingerprint": key, "results": report.results}).encode())
    return report


CHECKED = "checks/contracts.json"  # the last manifests' fingerprint and their contracts' results


def _fingerprint(frames: dict[str, pd.DataFrame], *suite_args) -> str | None:
    """SHA-256 of the frames' contents, the suites' arguments, this module's code and Great Expectations'
    version (object columns hashed as JSON text); None when a frame holds values that cannot be hashed
    (then the suites just run)."""
    import hashlib
    from importlib.metadata import version
    from pathlib import Path

    h = hashlib.sha256(json.dumps([version("great_expectations"), *suite_args]).encode())
    h.update(Path(__file__).read_bytes())
    try:
        for name in sorted(frames):
            df = frames[name]
            h.update(json.dumps([name, [str(c) for c in df.columns], [str(t) for t in df.dtypes]]).encode())
            flat = df.assign(**{str(c): df[c].map(_as_text) for c in df.select_dtypes(include="object").columns})
            h.update(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    except TypeError:
        return None
    return h.hexdigest()


def _as_text(value) -> str:
    """One cell of an object column (an array, a list, a string, None) as JSON text, to hash."""
    return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value, default=str)


def check_restore(results: list[dict]) -> ContractReport:
    """The restore run's contract: one known status per media, a reason for each failure, no negative counts."""
    gx = _gx()
    E = gx.expectations
    df = pd.DataFrame(results, columns=["media_id", "path", "status", "reason", "regions_restored"])
    df["has_reason"] = (df.status != "failed") | df.reason.notna()
    return _validate(
        {"restore": df},
        {
            "restore": [
                E.ExpectColumnValuesToBeUnique(column="media_id"),
                E.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "partial", "failed"]),
                E.ExpectColumnValuesToBeInSet(column="has_reason", value_set=[True]),
                E.ExpectColumnValuesToBeBetween(column="regions_restored", min_value=0),
            ]
        },
        gx,
    )


def enforce(report: ContractReport) -> ContractReport:
    """Raises ContractError naming every failed expectation of `report`."""
    if not report.success:
        raise ContractError("data contract broken: " + "; ".join(report.failures))
    return report


def check_published_faces(
    faces: pd.DataFrame,
    id_margin: float,
    max_over_margin: float = 0.0,
    detected_at: float = 0.2,
    detected_share: float = 0.95,
) -> ContractReport:
    """The publication's contract on its per-face table: every face handled by a step of the fallback
    chain (`method`, models/fallback.FALLBACKS); identity cosine to the original below `id_margin` for
    all but `max_over_margin` of the faces with a face put back, and CenterFace's score of the new face
    >= `detected_at` for at least `detected_share` of them ("solid" faces show no face: nothing of their
    person is left, and dlib puts a region filled with one colour at cosine >= 0.85 to the face it hides
    about as often as another person's face, so neither figure is theirs); every measure finite (pose
    error and ΔE may be missing where the original had no landmarks, never infinite)."""
    from faceveil.models.fallback import FALLBACKS

    gx = _gx()
    E = gx.expectations
    df = faces.copy()
    for c in ("identity_cosine", "pose_error_deg", "skin_delta_e", "detector_score", "seconds"):
        may_miss = c in ("pose_error_deg", "skin_delta_e")
        df[f"{c}_finite"] = ~np.isinf(df[c].astype(float)) & (df[c].notna() | may_miss)
    shown = df["method"] != "solid"  # nulls count as shown
    df["identity_cosine_of_faces_shown"] = df["identity_cosine"].astype(float).where(shown)
    df["detector_score_of_faces_shown"] = df["detector_score"].astype(float).where(shown)
    return _validate(
        {"published_faces": df},
        {
            "published_faces": [
                E.ExpectColumnValuesToNotBeNull(column="method"),
                E.ExpectColumnValuesToBeInSet(column="method", value_set=list(FALLBACKS)),
                E.ExpectColumnValuesToBeBetween(
                    column="identity_cosine_of_faces_shown",
                    min_value=-1.0001,
                    max_value=id_margin,
                    strict_max=True,
                    mostly=1.0 - max_over_margin,
                ),
                E.ExpectColumnValuesToBeBetween(
                    column="detector_score_of_faces_shown", min_value=detected_at, max_value=1.0, mostly=detected_share
                ),
                E.ExpectCompoundColumnsToBeUnique(column_list=["media_id", "face_index"]),
                *[
                    E.ExpectColumnValuesToBeInSet(column=f"{c}_finite", value_set=[True])
                    for c in ("identity_cosine", "pose_error_deg", "skin_delta_e", "detector_score", "seconds")
                ],
            ]
        },
        gx,
    )
