"""Phone-style video (coded frames sideways or upside down, a display matrix that turns them upright)
from the real clips of ../shared/data/video: watched as a player shows it, no face gets through, and
the manifests' boxes lie on the faces in display coordinates."""

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.models.detections import iou_matrix
from faceveil.storage.media import iter_frames, probe_video
from faceveil.pipeline.jobs import media_id

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leakcheck import boxes_many, leaks  # noqa: E402
from private import private  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]  # flows over ../shared/data

CLIPS = ("intel_face_demographics_walking_and_pause.mp4", "intel_head_pose_female_and_male.mp4", "intel_classroom.mp4")
TURNS = ((90, False), (180, False), (270, False), (90, True))


def stored_sideways(src: Path, dst: Path, degrees: int, hflip: bool) -> None:
    """Re-encodes `src` so that its coded frames are turned by -degrees (mirrored first with hflip)
    and its display matrix turns them back: what a player shows is `src` (np.rot90 turns
    counter-clockwise, as PyAV's set_display_rotation does)."""
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        vin = c.streams.video[0]
        s = out.add_stream("libx264", rate=vin.average_rate, options={"crf": "16", "preset": "veryfast"})
        h, w = vin.codec_context.height, vin.codec_context.width
        s.width, s.height = (h, w) if degrees % 180 else (w, h)
        s.pix_fmt = "yuv420p"
        s.set_display_rotation(degrees, hflip=hflip)
        for i, f in enumerate(c.decode(vin)):
            shown = f.to_ndarray(format="rgb24")
            coded = np.rot90(shown[:, ::-1] if hflip else shown, -degrees // 90)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(coded), format="rgb24")
            vf.pts, vf.time_base = i, 1 / Fraction(vin.average_rate)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


@pytest.fixture(scope="module")
def phone_archive(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("phone")
    for clip in CLIPS:
        for degrees, hflip in TURNS:
            stored_sideways(
                shared / "video" / clip,
                root / f"{Path(clip).stem}_r{degrees}{'m' if hflip else ''}.mp4",
                degrees,
                hflip,
            )
    return root


@pytest.fixture(scope="module")
def anonymized(phone_archive, tmp_path_factory, prefect_server):
    dest = tmp_path_factory.mktemp("phone_out")
    summary = run_anonymize(AnonymizeConfig.of(src=str(phone_archive), dest=str(dest), workers=2))
    return dest, summary


def test_test_clips_show_the_original_upright(shared, phone_archive):
    """The clips are what the test says they are: shown upright, each is the original clip."""
    clip = CLIPS[0]
    want = dict(iter_frames(str(shared / "video" / clip), probe_video(str(shared / "video" / clip))))
    for degrees, hflip in TURNS:
        p = str(phone_archive / f"{Path(clip).stem}_r{degrees}{'m' if hflip else ''}.mp4")
        info = probe_video(p)
        assert info.coded_size == ((info.height, info.width) if degrees % 180 else (info.width, info.height))
        got = dict(iter_frames(p, info))
        diff = np.mean([np.abs(got[i].astype(int) - want[i].astype(int)).mean() for i in range(0, len(want), 7)])
        assert diff < 4, (degrees, hflip, diff)


def test_no_face_shows_when_watched_upright(shared, phone_archive, anonymized, figures):
    dest, summary = anonymized
    assert summary["ok"] == len(CLIPS) * len(TURNS), summary["failures"]
    names = sorted(p.name for p in phone_archive.glob("*.mp4"))
    before = boxes_many([str(phone_archive / n) for n in names], every=2)  # read upright, as a player shows them
    after = boxes_many([str(dest / n) for n in names], every=2)
    per = {n: leaks(before[str(phone_archive / n)], after[str(dest / n)]) for n in names}
    n_in, n_out, n_same = (sum(v[k] for v in per.values()) for k in range(3))
    figures.append(
        f"phone-style clips ({len(names)}: 90/180/270 and mirrored): centerface at 0.3 upright finds "
        f"{n_out} faces in the outputs of {n_in} in the inputs ({100 * n_out / max(n_in, 1):.2f}%), "
        f"{n_same} where the input had one"
    )
    assert n_in > 300
    assert n_same <= 0.01 * n_in and n_out <= 0.01 * n_in, per
    for n in names:  # still stored sideways, with the same display matrix
        a, b = probe_video(str(phone_archive / n)), probe_video(str(dest / n))
        assert (b.orientation, b.width, b.height, b.n_frames) == (a.orientation, a.width, a.height, a.n_frames)


def test_manifest_boxes_are_in_display_coordinates(shared, phone_archive, anonymized):
    dest, _ = anonymized
    det = pq.read_table(private(dest) / "detections").to_pandas()
    media = pq.read_table(private(dest) / "media").to_pandas().set_index("media_id")
    truth = boxes_many([str(shared / "video" / c) for c in CLIPS], threshold=0.5, every=1)
    for clip in CLIPS:
        faces = truth[str(shared / "video" / clip)]
        for degrees, hflip in TURNS:
            mid = media_id(f"{Path(clip).stem}_r{degrees}{'m' if hflip else ''}.mp4")
            assert (media.loc[mid, "width"], media.loc[mid, "height"]) == (480, 270)
            d = det[(det.media_id == mid) & ~det.filled]
            hits = total = 0
            for f, boxes in faces.items():
                rows = d[d.frame_index == f][["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
                total += len(boxes)
                if len(boxes) and len(rows):
                    hits += int((iou_matrix(boxes, rows).max(1) >= 0.5).sum())
            assert total and hits >= 0.8 * total, (clip, degrees, hflip, hits, total)
