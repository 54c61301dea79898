"""The settings' parts: small frozen configs that check their own fields, composed by AnonymizeConfig;
one table routes a flat key to its part (an unknown key is an error naming it), and a config survives
Prefect's round trip through a JSON-able dict."""

import dataclasses
import json

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.settings_parts import (
    PART_OF,
    PARTS,
    ChecksSettings,
    ClusterSettings,
    DetectionSettings,
    EncodingSettings,
    MaskingSettings,
    SealingSettings,
)
from faceveil.storage.keys import MasterKey, VaultLock


@pytest.mark.parametrize("cls", PARTS.values())
def test_each_part_is_frozen(cls):
    part = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(part, name, getattr(part, name))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: DetectionSettings(precision="fp16"), "precision"),
        (lambda: DetectionSettings(threshold=1.5), "threshold"),
        (lambda: DetectionSettings(scale=0), "scale"),
        (lambda: DetectionSettings(detect_every=0), "detect_every"),
        (lambda: DetectionSettings(detect_fps=0), "detect_fps"),
        (lambda: DetectionSettings(second_look=-1), "second_look"),
        (lambda: DetectionSettings(extend=-1), "extend"),
        (lambda: MaskingSettings(mask_shape="star"), "mask_shape"),
        (lambda: MaskingSettings(scope="body"), "scope"),
        (lambda: MaskingSettings(pad=-0.1), "pad"),
        (lambda: MaskingSettings(pulse="fast"), "pulse"),
        (lambda: EncodingSettings(crf=99), "crf"),
        (lambda: EncodingSettings(chunk_seconds=0), "chunk_seconds"),
        (lambda: EncodingSettings(max_pixels=0), "max_pixels"),
        (lambda: ClusterSettings(workers=0), "workers"),
        (lambda: ClusterSettings(threads_per_worker=0), "threads_per_worker"),
        (lambda: ChecksSettings(max_leak=2.0), "max_leak"),
        (lambda: ChecksSettings(check_every_s=-1), "check_every_s"),
        (lambda: ChecksSettings(check_max_frames=0), "check_max_frames"),
    ],
)
def test_each_part_refuses_its_bad_values_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace("pulse", "--pulse")):
        make()


def test_the_parts_normalise_as_documented():
    assert MaskingSettings(pulse="target:90.0").pulse == "target:90" and MaskingSettings(pulse="off").pulse is None
    lock = VaultLock.of(MasterKey.generate())
    assert SealingSettings(vault_lock=dataclasses.asdict(lock)).vault_lock == lock  # a dict after Prefect


def test_of_routes_each_flat_key_to_its_part_and_refuses_an_unknown_one():
    config = AnonymizeConfig.of("/in", "/out", method="solid", workers=2, threshold=0.4, crf=20, max_leak=0.1)
    assert (config.masking.method, config.cluster.workers, config.detection.threshold) == ("solid", 2, 0.4)
    assert (config.encoding.crf, config.checks.max_leak) == (20, 0.1)
    assert set(PART_OF.values()) == set(PARTS)
    with pytest.raises(TypeError, match="unknown setting 'thresold'"):
        AnonymizeConfig.of("/in", "/out", thresold=0.4)
    with pytest.raises(TypeError, match="unknown setting 'run_state'"):  # not a setting: for_run
        AnonymizeConfig.of("/in", "/out", run_state={})
    with pytest.raises(TypeError, match="unknown setting 'detection'"):
        config.changed(detection=DetectionSettings())
    assert config.changed(threshold=0.5).detection == dataclasses.replace(config.detection, threshold=0.5)
    assert config.changed(threshold=0.5).masking is config.masking  # the other parts as they were


def test_rules_across_parts_stay_on_the_config():
    with pytest.raises(ValueError, match="--gpu-workers needs --dask-address"):
        AnonymizeConfig.of("/in", "/out", gpu_workers=True)
    with pytest.raises(ValueError, match="--pulse edits visible skin"):
        AnonymizeConfig.of("/in", "/out", pulse="scrub")
    with pytest.raises(ValueError, match="the identity index needs --reversible"):
        AnonymizeConfig.of("/in", "/out", index=True)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"method": "scramble", "detect_every": 3, "scope": "head", "workers": 2, "max_leak": 0.05},
        {"method": "replace", "replace_options": {"generator": "dcgan-digiface", "pool_seed": 3}, "pulse": "scrub"},
        {"method": "blur", "reversible": True, "index": False, "track": False, "dask_address": "tcp://h:8786"},
    ],
)
def test_a_config_survives_the_prefect_dict_round_trip(settings):
    lock = VaultLock.of(MasterKey.generate())
    keyed = settings.get("method") == "scramble" or settings.get("reversible")
    config = AnonymizeConfig.of("/in", "s3://bucket/out", **settings, vault_lock=lock if keyed else None)
    config = config.for_run(second_pass=("blazeface",), template_view="plain")
    as_json = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples come back lists, parts dicts
    back = AnonymizeConfig(**as_json)
    assert back == config and back.output_settings_hash() == config.output_settings_hash()
    assert isinstance(back.detection, DetectionSettings) and back.run_state.second_pass == ("blazeface",)
