import sys
from pathlib import Path
import numpy as np

from faceveil.models.anonymizers import Anonymizer, create_anonymizer
from faceveil.models.detections import Detections
from faceveil.pipeline.protect import protect_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402


class Broken(Anonymizer):
    def _replace(self, roi, face_size, key):
        raise RuntimeError("model crashed")


def test_a_failing_anonymizer_blacks_out_the_whole_frame():
    rgb = np.full((40, 50, 3), 200, np.uint8)
    assert protect_frame(Broken(), rgb, Detections([[5, 5, 20, 20]], [0.9])) is True
    assert not rgb.any()


def test_a_working_anonymizer_changes_only_the_face():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = rgb.copy()
    assert protect_frame(create_anonymizer("solid"), rgb, Detections([[5, 5, 20, 20]], [0.9])) is False
    assert (rgb[8:18, 8:18] != before[8:18, 8:18]).any() and (rgb[:, 40:] == before[:, 40:]).all()


class _Sealing:
    """A vault stand-in that records what it sealed (and can fail)."""

    def __init__(self, fail=False):
        self.sealed, self.fail = [], fail

    def seal(self, frame, track, box, pixels):
        if self.fail:
            raise OSError("disk full")
        self.sealed.append((frame, track, box, pixels.copy()))


def test_originals_are_sealed_before_masking_and_a_vault_failure_stops_the_frame():
    import pytest

    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = rgb.copy()
    vault = _Sealing()
    protect_frame(create_anonymizer("solid"), rgb, Detections([[5, 5, 20, 20]], [0.9], track_ids=[3]), 7, "m", vault)
    ((frame, track, (x1, y1, x2, y2), pixels),) = vault.sealed
    assert (frame, track) == (7, 3) and (pixels == before[y1:y2, x1:x2]).all()  # the original, not the mask
    rgb = before.copy()
    with pytest.raises(OSError):  # no output frame exists without its originals
        protect_frame(create_anonymizer("solid"), rgb, Detections([[5, 5, 20, 20]], [0.9]), 0, "m", _Sealing(fail=True))


class _Checks:
    def __init__(self, leaks, rate):
        self._leaks, self._rate = leaks, rate

    def leaks(self):
        return self._leaks

    def leak_rate(self):
        return self._rate


def test_leak_verdict_withholds_above_max_leak_and_names_the_frames():
    from faceveil.pipeline.protect import leak_verdict, outcome

    leak = [{"frame_index": 12, "faces": [{"detector": "blazeface", "score": 0.91, "box": [1, 2, 30, 40]}]}]
    assert leak_verdict(0.0, _Checks([], 0.0)) is None and leak_verdict(0.0, None) is None
    why = leak_verdict(0.0, _Checks(leak, 0.05))
    assert "frame(s) [12]" in why and "blazeface 0.91" in why and "5.0%" in why
    assert leak_verdict(0.1, _Checks(leak, 0.05)) is None  # within --max-leak
    row = outcome("cam/a.mp4", why, _Checks(leak, 0.05))
    assert row["status"] == "leaked" and row["output_path"] is None and row["leak_frames"] == [12]
    assert row["quarantine_path"] == "quarantine/cam/a.mp4"  # in the state root


def test_a_withheld_output_goes_to_quarantine_and_takes_an_earlier_one_down(tmp_path):
    from faceveil.pipeline.protect import commit_output
    from faceveil.storage.paths import Location

    dest, state = Location(str(tmp_path / "dest")), Location(str(private(tmp_path / "dest")))
    src = tmp_path / "in.jpg"
    src.write_bytes(b"input")
    for withheld in (False, True):
        out = tmp_path / "out.jpg"
        out.write_bytes(b"output %d" % withheld)
        commit_output(dest, state, str(out), "cam/x.jpg", str(src), None, withheld=withheld)
    assert not (tmp_path / "dest/cam/x.jpg").exists()  # the earlier published output is taken down
    assert (private(tmp_path / "dest") / "quarantine/cam/x.jpg").read_bytes() == b"output 1"
    out.write_bytes(b"fixed")
    commit_output(dest, state, str(out), "cam/x.jpg", str(src), None)
    assert (tmp_path / "dest/cam/x.jpg").read_bytes() == b"fixed"
    assert not (private(tmp_path / "dest") / "quarantine/cam/x.jpg").exists()
