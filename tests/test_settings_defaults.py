"""AnonymizeConfig keeps the user's settings as given: a combination that needs another setting is
an error naming both, a default that depends on another setting is read through one property, and
the output settings hash stays what it was before (a changed hash redoes every archive)."""

import dataclasses

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.storage.keys import VaultLock

LOCK = VaultLock("00" * 32, "fp")


def _config(**kw) -> AnonymizeConfig:
    return AnonymizeConfig.of(src="/in", dest="/out", **kw)


# computed on 7899ce2, before the defaults became explicit: the same user settings must hash the same
@pytest.mark.parametrize(
    "settings, hashed",
    [
        ({}, "33138bcd407f6e93"),
        ({"method": "scramble", "vault_lock": LOCK}, "542d3fd9bd00771b"),
        ({"method": "scramble", "vault_lock": LOCK, "reversible": True}, "542d3fd9bd00771b"),
        ({"method": "scramble", "vault_lock": LOCK, "index": False}, "4734dbd3a7e00c19"),
        ({"method": "blur", "reversible": True, "vault_lock": LOCK}, "0fe91e9fef4d49cf"),
        ({"track": False}, "6914c358b0a33138"),
        ({"track": False, "detect_every": 1}, "6914c358b0a33138"),
        ({"method": "keep", "pulse": "target:100"}, "68ea9387f378f902"),
        (
            {"method": "keep", "pulse": "scrub", "check_every_s": 2.0, "second_look": 0.7, "recheck": True},
            "d16ac7bf057ef892",
        ),
    ],
)
def test_output_settings_hash_is_unchanged(settings, hashed):
    assert _config(**settings).output_settings_hash() == hashed


def test_scramble_seals_by_default_and_refuses_reversible_false():
    scramble = _config(method="scramble", vault_lock=LOCK)
    assert scramble.sealing.reversible is None and scramble.sealed and scramble.sealing.index
    assert not _config().sealed and _config().sealing.reversible is None
    with pytest.raises(ValueError, match="--method scramble.*reversible = false"):
        _config(method="scramble", vault_lock=LOCK, reversible=False)
    with pytest.raises(ValueError, match="the scramble method needs a key"):
        _config(method="scramble")
    # a round trip (a changed copy, Prefect's parameters) keeps the field as given
    assert scramble.changed(workers=1).sealing.reversible is None
    assert AnonymizeConfig(**dataclasses.asdict(scramble)).sealing.reversible is None


def test_no_track_detects_every_frame_and_refuses_a_coarser_step():
    off = _config(track=False)
    assert off.detection.detect_every is None and off.run_detect_every == 1
    assert off.settings.frame_step(30, 1920, 1080) == 1
    assert _config().settings.frame_step(30, 1920, 1080) > 1  # the same video with the tracker
    with pytest.raises(ValueError, match="--no-track.*--detect-every 3"):
        _config(track=False, detect_every=3)


def test_keep_turns_checks_off_without_rewriting_them():
    keep = _config(method="keep", pulse="scrub", check_every_s=2.0, second_look=0.7, recheck=True)
    assert (keep.checks.check_every_s, keep.detection.second_look, keep.checks.recheck) == (2.0, 0.7, True)  # as given
    assert not keep.checks_on and (keep.run_check_every_s, keep.run_second_look, keep.run_recheck) == (0.0, 0.0, False)
    s = keep.settings
    assert s.second_look is None and s.checks.every_s == 0.0
    assert "keep" in keep.gate_off()
    blur = _config(method="blur", check_every_s=2.0, second_look=0.7)
    assert blur.checks_on and blur.run_recheck and blur.settings.checks.every_s == 2.0
    assert blur.settings.second_look is not None and blur.gate_off() is None


def test_run_state_is_apart_from_the_settings():
    from faceveil.config import RunState

    config = _config(method="blur")
    again = config.for_run(second_pass=("blazeface",))
    assert config.run_state == RunState() and again.run_state.second_pass == ("blazeface",)
    assert again.settings.second_pass and [n for n, _ in again.settings.extra_detectors] == ["blazeface"]
    assert not config.settings.second_pass and config.settings.extra_detectors == ()
    assert again.output_settings() == config.output_settings()  # the same settings: the same outputs' hash
    viewed = again.for_run(template_view="plain")
    assert viewed.settings.template_view == "plain" and viewed.run_state.second_pass == ("blazeface",)
    # after Prefect's JSON round trip the state comes back as a dict, a tuple as a list
    as_dict = dataclasses.asdict(_config(method="blur"))
    back = AnonymizeConfig(**as_dict | {"run_state": {"second_pass": ["blazeface"], "template_view": "plain"}})
    assert back.run_state == viewed.run_state
    from faceveil.config_file import ConfigFileError, parse_config

    for key in ("run_state", "second_pass", "template_view"):  # never from a config file
        with pytest.raises(ConfigFileError, match=f"'{key}'"):
            parse_config({key: "plain"}, "archive.toml")
