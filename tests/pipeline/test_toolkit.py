import pickle
from dataclasses import replace

import numpy as np
from skimage import data

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.toolkit import toolkit


def test_settings_are_resolved_once_and_travel_with_the_config():
    config = AnonymizeConfig.of(src="a", dest="b", threshold=0.4)
    s = config.settings
    assert config.settings is s  # computed once
    assert pickle.loads(pickle.dumps(config)).settings == s  # what a worker receives
    assert s.threshold == 0.4 and s.detector_settings.threshold == 0.2  # tracking floor: half the threshold
    assert config.for_run(second_pass=True).settings.frame_step(30, 1280, 720) == max(
        1, s.frame_step(30, 1280, 720) // 2
    )
    v = s.for_video(30, 1280, 720)
    assert v.step == s.frame_step(30, 1280, 720) and v.tracker.max_gap >= 2 * v.step


def test_one_toolkit_per_worker_and_settings():
    a = AnonymizeConfig.of(src="a", dest="b")
    kit = toolkit(a.settings)
    assert toolkit(replace(a).settings) is kit  # equal settings: the same models, loaded once
    other = toolkit(a.changed(threshold=0.6).settings)
    assert other is not kit and other.settings.threshold == 0.6
    rgb = np.ascontiguousarray(data.astronaut())
    found = kit.find(rgb)
    assert len(found) >= 1 and found.scores.max() > 0.5  # the astronaut's face
    assert [name for name, _ in kit.gate(kit.settings.checks.gate)] == [n for n, _ in kit.settings.checks.gate]


def test_second_pass_adds_only_the_gate_families_that_found_leaks():
    """A second pass after CenterFace-only leaks drops CenterFace's floor but runs no BlazeFace; after
    a BlazeFace leak (or when the families are not known) BlazeFace works beside it."""
    from faceveil.config import SECOND_PASS_MARGIN
    from faceveil.pipeline.records import second_pass_note

    config = AnonymizeConfig.of(src="a", dest="b")
    names = lambda c: [n for n, _ in c.extra_detectors()]  # noqa: E731
    assert names(config) == []
    assert names(config.for_run(second_pass=True)) == ["blazeface"]
    assert names(config.for_run(second_pass=("blazeface",))) == ["blazeface"]
    own = config.for_run(second_pass=("centerface",))
    assert names(own) == [] and own.settings.second_look is not None
    assert own.detector_settings().threshold <= SECOND_PASS_MARGIN * 0.2 + 1e-9
    assert own.settings.frame_step(30, 1280, 720) == config.for_run(second_pass=True).settings.frame_step(30, 1280, 720)
    assert "blazeface" not in second_pass_note(own) and "blazeface" in second_pass_note(
        config.for_run(second_pass=True)
    )


def test_leak_families_are_the_detectors_that_found_leaks():
    from faceveil.pipeline.records import leak_families

    class Checks:  # the FrameChecks surface leak_families reads
        def __init__(self, leaks):
            self.leaks = lambda: leaks

    leaks = [
        {"frame_index": 3, "faces": [{"detector": "centerface", "score": 0.2, "box": [0, 0, 9, 9]}]},
        {
            "frame_index": 9,
            "faces": [
                {"detector": "blazeface", "score": 0.7, "box": [0, 0, 9, 9]},
                {"detector": "centerface", "score": 0.3, "box": [5, 5, 9, 9]},
            ],
        },
    ]
    assert leak_families(Checks(leaks)) == ("blazeface", "centerface")
    assert leak_families(Checks(leaks[:1])) == ("centerface",)
    assert leak_families(Checks([])) == () and leak_families(None) == ()


def test_identity_replacement_detects_in_fp32_under_auto():
    """auto lets masking runs detect in bf16 where the CPU has it; identity replacement, whose
    generator is fitted to the detector's landmarks, stays on fp32 unless told otherwise."""
    assert AnonymizeConfig.of(src="a", dest="b").settings.detector_settings.precision == "auto"
    assert AnonymizeConfig.of(src="a", dest="b", method="replace").settings.detector_settings.precision == "fp32"
    assert AnonymizeConfig.of(src="a", dest="b", method="replace").settings.second_look.precision == "fp32"
    assert (
        AnonymizeConfig.of(src="a", dest="b", method="replace", precision="bf16").settings.detector_settings.precision
        == "bf16"
    )
