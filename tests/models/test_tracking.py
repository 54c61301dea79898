import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.tracking import TrackerSettings, track_media


def face(x, y, s=20, score=0.9):
    return Detections([[x, y, x + s, y + s]], [score])


def test_gap_inside_track_is_interpolated_and_flagged():
    sampled = [
        (0, face(10, 10)),
        (1, face(12, 10)),
        (2, Detections.empty()),
        (3, Detections.empty()),
        (4, face(18, 10)),
    ]
    per_frame, tracks = track_media(sampled, 10, 200, 100, TrackerSettings(max_gap=5, extend=0))
    assert len(tracks) == 1
    assert per_frame[2].filled.all() and per_frame[3].filled.all()
    np.testing.assert_allclose(per_frame[2].boxes[0], [14, 10, 34, 30], atol=1e-4)
    assert not per_frame[4].filled.any()
    assert {int(d.track_ids[0]) for d in per_frame.values()} == {1}


def test_gap_longer_than_max_gap_splits_track():
    sampled = [(0, face(10, 10)), (20, face(10, 10))]
    per_frame, tracks = track_media(sampled, 30, 200, 100, TrackerSettings(max_gap=5, extend=0))
    assert len(tracks) == 2
    assert 10 not in per_frame


def test_late_first_detection_is_covered_backwards_along_motion():
    sampled = [(f, face(50 + 5 * (f - 6), 40) if f >= 6 else Detections.empty()) for f in range(0, 12)]
    per_frame, _ = track_media(sampled, 12, 300, 100, TrackerSettings(extend=3))
    assert min(per_frame) == 3  # three frames before the first detection
    # extrapolated backwards with the track's velocity (5 px/frame to the right)
    np.testing.assert_allclose(per_frame[5].boxes[0, 0], 45, atol=0.5)
    assert per_frame[5].filled.all()
    assert max(per_frame) == 11


def test_motion_prediction_keeps_fast_face_in_one_track():
    # 15 px/frame with a 20 px face: plain IoU between consecutive boxes would be 0.14
    sampled = [(f, face(10 + 15 * f, 30)) for f in range(8)]
    _, tracks = track_media(sampled, 8, 400, 100, TrackerSettings(iou_threshold=0.3, extend=0))
    assert len(tracks) == 1


def test_two_crossing_faces_keep_their_ids():
    sampled = [(f, Detections.concat([face(10 + 8 * f, 20, 30), face(150 - 8 * f, 60, 30)])) for f in range(10)]
    per_frame, tracks = track_media(sampled, 10, 300, 200, TrackerSettings(extend=0))
    assert len(tracks) == 2
    for f, d in per_frame.items():
        upper = d.track_ids[np.argmin(d.boxes[:, 1])]
        assert upper == per_frame[0].track_ids[np.argmin(per_frame[0].boxes[:, 1])]


def test_low_score_detection_continues_but_never_drops_a_face():
    sampled = [(0, face(10, 10, score=0.9)), (1, face(11, 10, score=0.25)), (2, face(80, 60, score=0.25))]
    per_frame, tracks = track_media(sampled, 3, 200, 100, TrackerSettings(extend=0))
    assert per_frame[1].track_ids[0] == per_frame[0].track_ids[0]
    assert len(per_frame[2]) >= 1 and any((per_frame[2].boxes[:, 0] == 80))


def test_extension_clipped_to_frame():
    sampled = [(0, face(0, 0)), (1, face(5, 0))]
    per_frame, _ = track_media(sampled, 10, 40, 40, TrackerSettings(extend=8))
    for d in per_frame.values():
        assert (d.boxes[:, [0, 2]] >= 0).all() and (d.boxes[:, [0, 2]] <= 40).all()
        assert (d.boxes[:, [1, 3]] >= 0).all() and (d.boxes[:, [1, 3]] <= 40).all()


def test_weak_detections_continue_a_track_that_a_strong_one_started():
    sampled = [(0, face(10, 10, score=0.6)), (4, face(14, 10, score=0.12)), (8, face(18, 10, score=0.11))]
    per_frame, tracks = track_media(sampled, 12, 200, 100, TrackerSettings(start_score=0.2, extend=0))
    assert len(tracks) == 1 and all(len(per_frame[f]) == 1 for f in range(9))


def test_a_lone_weak_detection_masks_nothing_but_a_repeated_one_makes_a_track():
    lone = [(0, face(10, 10, score=0.15)), (4, Detections.empty()), (8, Detections.empty())]
    per_frame, tracks = track_media(lone, 12, 200, 100, TrackerSettings(start_score=0.2, confirm_hits=3))
    assert tracks == [] and per_frame == {}
    twice = [(0, face(10, 10, score=0.15)), (4, face(12, 10, score=0.14)), (8, Detections.empty())]
    _, tracks = track_media(twice, 12, 200, 100, TrackerSettings(start_score=0.2, confirm_hits=3))
    assert tracks == []
    thrice = [(0, face(10, 10, score=0.15)), (4, face(12, 10, score=0.14)), (8, face(14, 10, score=0.16))]
    per_frame, tracks = track_media(thrice, 12, 200, 100, TrackerSettings(start_score=0.2, confirm_hits=3))
    assert len(tracks) == 1 and len(tracks[0].frames) == 3
    assert all(len(per_frame[f]) == 1 for f in range(9))  # the gaps between the weak hits are covered too


def test_filled_rows_scores_order_and_where_extension_stops():
    """Gap rows score the lower of their neighbours; an extension leaving the frame stops there (no
    row of zero area, none after it); in a frame, rows come in track order; fill_track agrees."""
    from faceveil.models.tracking import associate, fill_track

    sampled = [
        (0, Detections.concat([face(30, 10, score=0.9), face(100, 50, score=0.8)])),
        (3, Detections.concat([face(18, 10, score=0.4), face(100, 50, score=0.7)])),
    ]
    settings = TrackerSettings(extend=6)
    per_frame, tracks = track_media(sampled, 20, 200, 100, settings)
    assert [int(t) for t in per_frame[1].track_ids] == [1, 2]
    np.testing.assert_allclose(per_frame[1].scores, [0.4, 0.7])
    np.testing.assert_allclose(per_frame[0].scores, [0.9, 0.8])
    left = {f: d[d.track_ids == 1] for f, d in per_frame.items() if (d.track_ids == 1).any()}
    assert min(left) == 0 and max(left) == 3 + 6  # in the frame all along (x1 18 -> 0, x2 38 -> 14)
    edge = [(0, face(14, 10)), (3, face(2, 10))]  # 4 px a frame to the left: at frame 9 it has left
    rows, _ = track_media(edge, 20, 200, 100, TrackerSettings(extend=8))
    assert max(rows) == 8 and float(rows[8].boxes[0, 0]) == 0.0 and float(rows[8].boxes[0, 2]) == 2.0
    rows = fill_track(associate(sampled, settings)[0], 20, 200, 100, 6)
    assert sorted(rows) == sorted(left)
    for f, d in rows.items():
        np.testing.assert_allclose(d.boxes, left[f].boxes)
