import pickle
from dataclasses import replace

import numpy as np
from skimage import data

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.toolkit import toolkit


def test_settings_are_resolved_once_and_travel_with_the_config():
    config = AnonymizeConfig(src="a", dest="b", threshold=0.4)
    s = config.settings
    assert config.settings is s  # computed once
    assert pickle.loads(pickle.dumps(config)).settings == s  # what a worker receives
    assert s.threshold == 0.4 and s.detector_settings.threshold == 0.2  # tracking floor: half the threshold
    assert replace(config, second_pass=True).settings.frame_step(30, 1280, 720) == max(1, s.frame_step(30, 1280, 720) // 2)
    v = s.for_video(30, 1280, 720)
    assert v.step == s.frame_step(30, 1280, 720) and v.tracker.max_gap >= 2 * v.step


def test_one_toolkit_per_worker_and_settings():
    a = AnonymizeConfig(src="a", dest="b")
    kit = toolkit(a.settings)
    assert toolkit(replace(a).settings) is kit  # equal settings: the same models, loaded once
    other = toolkit(replace(a, threshold=0.6).settings)
    assert other is not kit and other.settings.threshold == 0.6
    rgb = np.ascontiguousarray(data.astronaut())
    found = kit.find(rgb)
    assert len(found) >= 1 and found.scores.max() > 0.5  # the astronaut's face
    assert [name for name, _ in kit.gate(kit.settings.checks.gate)] == [n for n, _ in kit.settings.checks.gate]
