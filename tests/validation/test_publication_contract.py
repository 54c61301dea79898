"""The publication's contract with the fallback chain (models/fallback): every face has a method, and
only faces with a face put back are held to the identity margin and to being still detected."""

import pandas as pd

from faceveil.tasks.publish_faces import faces_by_method
from faceveil.validation.contracts import check_published_faces


def _faces(methods, cos=0.7, score=0.9):
    n = len(methods)
    return pd.DataFrame(
        {
            "media": [f"p{i}.jpg" for i in range(n)],
            "media_id": [f"m{i}" for i in range(n)],
            "face_index": 0,
            "surrogate_id": [f"{i:016x}" for i in range(n)],
            "method": methods,
            "identity_cosine": cos,
            "pose_error_deg": 3.0,
            "skin_delta_e": 1.5,
            "detector_score": score,
            "face_size": 80.0,
            "seconds": 2.0,
        }
    )


def test_solid_faces_are_not_held_to_the_margin_nor_to_being_detected():
    faces = _faces(["replace", "replace-strong", "generated", "solid"])
    faces.loc[3, ["identity_cosine", "detector_score", "pose_error_deg"]] = [0.93, 0.0, 90.0]  # a filled region
    assert check_published_faces(faces, 0.85).success
    every = _faces(["solid"] * 3, cos=0.9, score=0.0)  # every face filled: nothing shown, nothing to hold
    assert check_published_faces(every, 0.85).success


def test_a_shown_face_within_the_margin_or_without_a_method_breaks_the_contract():
    faces = _faces(["replace", "generated", "solid"])
    faces.loc[1, "identity_cosine"] = 0.86
    failed = " ".join(check_published_faces(faces, 0.85).failures)
    assert "identity_cosine_of_faces_shown" in failed
    assert check_published_faces(faces, 0.85, max_over_margin=0.5).success  # --max-over-margin still lets some through
    unknown = _faces(["replace", None, "blur"])
    failed = " ".join(check_published_faces(unknown, 0.85).failures)
    assert (
        "expect_column_values_to_not_be_null(method)" in failed
        and "expect_column_values_to_be_in_set(method)" in failed
    )
    assert not check_published_faces(
        unknown.iloc[[0, 1]].reset_index(drop=True), 0.85
    ).success  # a null alone fails too


def test_faces_by_method_counts_in_chain_order():
    counts = faces_by_method(_faces(["solid", "replace", "replace", "generated"]))
    assert list(counts) == ["replace", "replace-strong", "generated", "solid"]
    assert counts == {"replace": 2, "replace-strong": 0, "generated": 1, "solid": 1}
    assert faces_by_method(_faces(["replace", None]))["unrecorded"] == 1
