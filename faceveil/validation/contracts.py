"""Data contracts on an archive's manifests: Great Expectations suites defined here in code, run in
an ephemeral context (nothing written, no telemetry). A failed expectation is named with its table,
column and how many rows broke it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceveil.storage import manifests
from faceveil.storage.paths import Location


@dataclass
class ContractReport:
    results: list[dict] = field(default_factory=list)  # {table, expectation, column, success, unexpected}

    @property
    def success(self) -> bool:
        return all(r["success"] for r in self.results)

    @property
    def failures(self) -> list[str]:
        return [f"{r['table']}: {r['expectation']}({r['column']}) failed for {r['unexpected']} row(s)"
                for r in self.results if not r["success"]]


class ContractError(RuntimeError):
    """Raised by `enforce` when a manifest breaks its contract; the message names each expectation."""


def manifest_frames(dest: Location) -> dict[str, pd.DataFrame]:
    """The manifests as data frames, with the derived columns the expectations check."""
    media = manifests.read_table(dest, "media").to_pandas()
    det = manifests.read_table(dest, "detections").to_pandas()
    det = det.join(media.set_index("media_id")[["width", "height", "frames_in"]], on="media_id")
    det["right_room"], det["bottom_room"] = det.width - det.x2, det.height - det.y2
    det["box_width"], det["box_height"] = det.x2 - det.x1, det.y2 - det.y1
    det["frames_after"] = det.frames_in - det.frame_index
    ok = media[media.status == "ok"].copy()
    ok["frame_difference"] = ok.frames_out - ok.frames_in
    fps = ok.fps.where(ok.fps > 0, np.nan)
    ok["duration_error_frames"] = ((ok.duration_out_s - ok.duration_in_s).abs() * fps).fillna(0)
    ok["audio_kept"] = ok.has_audio_in.fillna(False) == ok.has_audio_out.fillna(False)
    rev = ok[ok.vault_entries.notna()].copy()
    rev["faces_without_vault_entry"] = rev.n_faces - rev.vault_entries
    return {"media": media, "detections": det, "ok_media": ok, "vault": rev}


def _suites(gx) -> dict[str, list]:
    E = gx.expectations
    between = E.ExpectColumnValuesToBeBetween
    return {
        "media": [E.ExpectColumnValuesToBeUnique(column="media_id"),  # one final status per media
                  E.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed"])],
        "detections": [between(column=c, min_value=0) for c in ("x1", "y1", "right_room", "bottom_room")]
        + [between(column="score", min_value=0, max_value=1), between(column="box_width", min_value=0, strict_min=True),
           between(column="box_height", min_value=0, strict_min=True), between(column="frame_index", min_value=0),
           between(column="frames_after", min_value=1)],
        "ok_media": [between(column="frame_difference", min_value=0, max_value=0),
                     between(column="duration_error_frames", min_value=0, max_value=1.001),
                     E.ExpectColumnValuesToBeInSet(column="audio_kept", value_set=[True])],
        "vault": [between(column="faces_without_vault_entry", min_value=0, max_value=0)],
    }


def check_manifests(dest: Location) -> ContractReport:
    """Runs every suite on the archive's manifests."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    source = ctx.data_sources.add_pandas("faceveil_manifests")
    report = ContractReport()
    frames = manifest_frames(dest)
    for table, expectations in _suites(gx).items():
        df = frames[table]
        if df.empty:
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=f"faceveil_{table}", expectations=expectations)
        res = batch.get_batch(batch_parameters={"dataframe": df}).validate(suite)
        for r in res.results:
            cfg = r.expectation_config
            report.results.append({"table": table, "expectation": cfg.type, "column": cfg.kwargs.get("column"),
                                   "success": bool(r.success), "unexpected": int(r.result.get("unexpected_count") or 0)})
    return report


def enforce(dest: Location) -> ContractReport:
    """`check_manifests`, raising ContractError naming every failed expectation."""
    report = check_manifests(dest)
    if not report.success:
        raise ContractError("data contract broken: " + "; ".join(report.failures))
    return report
