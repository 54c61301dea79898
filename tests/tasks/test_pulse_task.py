"""The pulse task with identity replacement, in-process (the task functions the flow runs on its
workers): the replaced face still carries the original's 72 bpm pulse (replace keeps the skin's
colour changes), and --pulse edits it on the replaced face; frames are anonymized the same way in
the pulse task and the encoder, so only skin-mask pixels differ from a replace run without it."""

import sys
from pathlib import Path

import numpy as np
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.models.rppg import create_estimator
from faceveil.pipeline.pulse import skin_of
from faceveil.tasks.detect import detect_chunk, track_video
from faceveil.tasks.discover import discover
from faceveil.tasks.finish_video import finish_video
from faceveil.tasks.plan import plan_video
from faceveil.tasks.pulse import pulse_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pulseclip import make_clip, read_video, write_video  # noqa: E402


def _run(src: Path, dest: Path, pulse: str | None):
    config = AnonymizeConfig.of(
        src=str(src), dest=str(dest), method="replace", pulse=pulse, lossless=True, workers=1, check_every_s=0
    )
    (item,), _ = discover(config)
    plan = plan_video(config, item)
    tracked = track_video(config, item, plan.info, [detect_chunk(config, item, plan.info, c) for c in plan.chunks])
    tracked = pulse_video(config, item, plan.info, tracked)
    assert finish_video(config, item, plan.info, tracked, "test").ok
    return tracked, read_video(str(dest / "face.mkv"))


def _trace(tracked, frames, plain):
    """The skin-mean trace of `frames` in the pipeline's skin masks (found on the replaced frames `plain`)."""
    h, w = frames.shape[1:3]
    return np.stack(
        [skin_of(tracked.per_frame[i], 0, h, w, plain[i]).mean(frames[i]) for i in sorted(tracked.per_frame)]
    )


@pytest.mark.slow
@pytest.mark.shared_data
def test_replace_with_pulse(shared, tmp_path, figures):
    clip = make_clip(str(shared / "faces/deepface_id29/2.jpg"), seconds=6.0, where="skin")
    (tmp_path / "src").mkdir()
    write_video(str(tmp_path / "src" / "face.mkv"), clip.frames, clip.fps)
    _, plain = _run(tmp_path / "src", tmp_path / "plain", None)
    tracked, out = _run(tmp_path / "src", tmp_path / "target", "target:100")
    assert len(tracked.pulse.tracks) == 1
    h, w = out.shape[1:3]
    masks = np.zeros(out.shape[:3], bool)
    for i, d in tracked.per_frame.items():
        masks[i] |= skin_of(d, 0, h, w, plain[i]).full(h, w)  # found where the pipeline finds it: the replaced frame
    assert not ((out != plain).any(-1) & ~masks).any()
    for name in ("chrom", "green"):
        before = create_estimator(name).read_trace(_trace(tracked, plain, plain), clip.fps)
        after = create_estimator(name).read_trace(_trace(tracked, out, plain), clip.fps)
        figures.append(f"replace + target:100, {name}: {before.bpm:.1f} -> {after.bpm:.1f} bpm")
        assert abs(after.bpm - 100) <= 3, (name, after)
