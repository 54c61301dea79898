"""One mapping from `anonymize`'s flags and the config file's keys to AnonymizeConfig, checked both
ways: every setting a user may give is reachable, every flag is a setting (a field path in a part,
e.g. detection.threshold) or named as none, and a command line and the equivalent config file give
the same config."""

import argparse
import dataclasses
import operator

import pytest

from faceveil.cli.parser import build_parser
from faceveil.cli.settings_map import NOT_SETTINGS, SETTING_FLAGS, cli_settings
from faceveil.config import AnonymizeConfig
from faceveil.config_file import settable_fields
from faceveil.settings_parts import PARTS, setting_path
from faceveil.storage.keys import MasterKey, write_key_file

# fields neither a flag nor a config key sets, and why
UNREACHABLE = {
    "vault_lock": "derived from the key (--key, --passphrase, the file's [key] table)",
    "storage_options": "credentials: the AWS environment, or the Python API",
    "replace_options": "a table of the replace generator's options: the Python API (faceveil publish sets it)",
}


def _field_paths() -> set[str]:
    """Every user setting's place on AnonymizeConfig: its own fields (but the run state) and the parts' fields."""
    own = {f.name for f in dataclasses.fields(AnonymizeConfig) if f.name not in PARTS and f.name != "run_state"}
    return own | {f"{p}.{f.name}" for p, cls in PARTS.items() for f in dataclasses.fields(cls)}


def _dests(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest for a in sub._actions if not isinstance(a, argparse._HelpAction)}


@pytest.mark.parametrize("command", ["anonymize", "pulse"])
def test_every_flag_is_a_setting_or_named_as_none(command):
    dests = _dests(command)
    assert dests - set(SETTING_FLAGS) - set(NOT_SETTINGS) == set()
    assert set(SETTING_FLAGS) <= dests  # no stale entry
    flag_paths = {setting_path(name) for name, _ in SETTING_FLAGS.values()}
    assert flag_paths <= {setting_path(k) for k in settable_fields()} <= _field_paths()  # a flag's field is a key
    assert not set(SETTING_FLAGS) & set(NOT_SETTINGS)
    config = AnonymizeConfig.of("/in", "/out")
    for path in flag_paths:  # each one read where it is
        operator.attrgetter(path)(config)


def test_every_user_setting_is_a_flag_or_a_key():
    reachable = {setting_path(k) for k in set(settable_fields()) | {name for name, _ in SETTING_FLAGS.values()}}
    assert _field_paths() - reachable == {setting_path(k) for k in UNREACHABLE}


def test_an_unmapped_option_is_an_error():
    with pytest.raises(KeyError, match="'new_flag'"):
        cli_settings(argparse.Namespace(new_flag=1), ["new_flag"])


def test_plain_command_line_defaults_are_the_config_defaults(tmp_path):
    from faceveil.cli.runs import _config

    args = build_parser().parse_args(["anonymize", str(tmp_path / "in"), str(tmp_path / "out")])
    assert _config(args) == (None, AnonymizeConfig.of(src=str(tmp_path / "in"), dest=str(tmp_path / "out")))


@pytest.mark.parametrize(
    "flags, toml",
    [
        (
            ["--check-every", "2.5", "--check-frames", "12", "--max-leak", "5", "--mlflow-uri", "sqlite:///m.db"],
            'check_every_s = 2.5\ncheck_max_frames = 12\nmax_leak = 0.05\ntracking_uri = "sqlite:///m.db"\n',
        ),
        (
            [
                "--method",
                "blur",
                "--no-track",
                "--no-recheck",
                "--second-look",
                "0",
                "--mask",
                "ellipse",
                "--crf",
                "20",
            ],
            'method = "blur"\ntrack = false\nrecheck = false\nsecond_look = 0\nmask_shape = "ellipse"\ncrf = 20\n',
        ),
        (
            ["--reversible", "--no-index", "--detect-every", "3", "--scope", "head"],
            'reversible = true\nindex = false\ndetect_every = 3\nscope = "head"\n',
        ),
        (["--method", "scramble"], 'method = "scramble"\n'),
        (
            ["--method", "keep", "--pulse", "target:90", "--check-every", "3"],
            'method = "keep"\npulse = "target:90"\ncheck_every_s = 3\n',
        ),
    ],
)
def test_a_command_line_and_its_config_file_give_the_same_config(tmp_path, flags, toml):
    from faceveil.cli.configured import configured
    from faceveil.cli.runs import _config

    key = tmp_path / "k.key"
    write_key_file(key, MasterKey.generate())
    src, dest = str(tmp_path / "in"), str(tmp_path / "out")
    argv = ["anonymize", src, dest, "--key", str(key), *flags]
    got_flags = _config(build_parser(argv).parse_args(argv))
    path = tmp_path / "archive.toml"
    path.write_text(f'src = "{src}"\ndest = "{dest}"\n{toml}[key]\nfile = "{key}"\n')
    argv = ["anonymize", "--config", str(path)]
    got_file = configured(build_parser(argv).parse_args(argv), argv)
    assert got_flags[1] == got_file[1]
    assert (got_flags[0] and got_flags[0].fingerprint) == (got_file[0] and got_file[0].fingerprint)
