"""The archive config file (TOML): AnonymizeConfig's fields, the key by reference only, clear errors
naming the file and the key; `faceveil anonymize --config` with flags that override it."""

import dataclasses
from pathlib import Path

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.config_file import ConfigFileError, NOT_IN_FILE, load_config_file, settable_fields
from faceveil.storage.keys import MasterKey, VaultLock, encode_key, write_key_file


def _write(tmp_path: Path, text: str, name: str = "archive.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_settings_key_reference_and_relative_paths(tmp_path):
    f = load_config_file(
        _write(
            tmp_path,
            'src = "in"\ndest = "s3://bucket/out"\nmethod = "blur"\nthreshold = 1\n'
            'reversible = true\nworkers = 2\n[key]\nfile = "keys/archive.key"\n',
        )
    )
    assert f.settings == {
        "src": str(tmp_path / "in"),
        "dest": "s3://bucket/out",
        "method": "blur",
        "threshold": 1.0,
        "reversible": True,
        "workers": 2,
    }
    assert isinstance(f.settings["threshold"], float)
    assert f.key_ref == {"file": str(tmp_path / "keys/archive.key")}
    assert f.needs_key
    key = MasterKey.generate()
    config = f.anonymize_config(overrides={"workers": 1}, vault_lock=VaultLock.of(key))
    assert (config.method, config.workers, config.index, config.vault_lock.fingerprint) == (
        "blur",
        1,
        True,
        key.fingerprint,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('src = "a"\nsrcs = "b"\n', "unknown key 'srcs'"),
        ('workers = "two"\n', "key 'workers' must be int, not str"),
        ("reversible = 1\n", "key 'reversible' must be bool"),
        ("workers = true\n", "key 'workers' must be int"),
        ('storage_options = {key = "AKIA"}\n', "'storage_options' cannot be set in a config file"),
        ('vault_lock = "x"\n', "'vault_lock' cannot be set"),
        ('[key]\nfile = "a"\nenv = "B"\n', "[key]: give exactly one of file, env, prefect_secret"),
        ('[key]\nvalue = "faceveil-key-v1:AAAA"\n', "[key]: unknown key 'value'"),
        ('[key]\nenv = ""\n', "env must be a non-empty string"),
        ('key = "faceveil-key-v1:AAAA"\n', "[key]: must be a table"),
        ("src = \n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigFileError) as e:
        load_config_file(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_file_and_missing_paths(tmp_path):
    with pytest.raises(ConfigFileError, match="config file not found"):
        load_config_file(tmp_path / "nope.toml")
    f = load_config_file(_write(tmp_path, 'src = "/in"\n'))
    with pytest.raises(ConfigFileError, match="'dest' is not set"):
        f.anonymize_config()


def test_every_settable_key_is_a_field_and_internal_ones_are_not_settable():
    fields = {f.name for f in dataclasses.fields(AnonymizeConfig)}
    settable = settable_fields()
    assert set(settable) <= fields and not set(settable) & set(NOT_IN_FILE)
    assert {
        "src",
        "dest",
        "method",
        "threshold",
        "reversible",
        "index",
        "workers",
        "dask_address",
        "check_every_s",
        "max_leak",
        "tracking_uri",
        "recheck",
    } <= set(settable)


def _cli(tmp_path, toml: str, *flags):
    """(key, config) of `faceveil anonymize --config FILE FLAGS`, through the parser."""
    from faceveil.cli.configured import configured
    from faceveil.cli.parser import build_parser

    argv = ["anonymize", "--config", str(_write(tmp_path, toml)), *flags]
    return configured(build_parser(argv).parse_args(argv), argv)


def test_cli_flags_override_the_file_and_defaults_do_not(tmp_path):
    toml = 'src = "/in"\ndest = "/out"\nmethod = "blur"\nmax_leak = 0.02\ncheck_every_s = 2.0\nworkers = 3\n'
    _, config = _cli(tmp_path, toml)
    assert (config.method, config.max_leak, config.check_every_s, config.workers, config.crf) == (
        "blur",
        0.02,
        2.0,
        3,
        18,
    )
    _, config = _cli(
        tmp_path, toml, "--method", "mosaic", "--max-leak", "5", "--check-every", "8", "--crf", "20", "/other-in"
    )
    assert (
        config.src,
        config.dest,
        config.method,
        config.max_leak,
        config.check_every_s,
        config.workers,
        config.crf,
    ) == ("/other-in", "/out", "mosaic", 0.05, 8.0, 3, 20)


def test_cli_key_from_the_file_reference_or_from_key(tmp_path, monkeypatch):
    key, other = MasterKey.generate(), MasterKey.generate()
    write_key_file(tmp_path / "archive.key", key)
    write_key_file(tmp_path / "other.key", other)
    toml = 'src = "/in"\ndest = "/out"\nreversible = true\n[key]\nfile = "archive.key"\n'
    got, config = _cli(tmp_path, toml)
    assert got.fingerprint == key.fingerprint == config.vault_lock.fingerprint and config.index
    got, config = _cli(tmp_path, toml, "--key", str(tmp_path / "other.key"))
    assert got.fingerprint == other.fingerprint == config.vault_lock.fingerprint
    monkeypatch.setenv("ARCHIVE_KEY", encode_key(other))
    got, _ = _cli(tmp_path, 'src = "/in"\ndest = "/out"\nreversible = true\n[key]\nenv = "ARCHIVE_KEY"\n')
    assert got.fingerprint == other.fingerprint
    import os

    assert "ARCHIVE_KEY" not in os.environ  # read, then out of the environment the run's processes inherit


def test_paths_are_optional_with_a_config_file_only():
    from faceveil.cli.parser import build_parser

    with pytest.raises(SystemExit):
        build_parser(["anonymize", "/in"]).parse_args(["anonymize", "/in"])
    argv = ["anonymize", "/in", "--method", "blur", "/out"]  # options between SRC and DEST, as before
    args = build_parser(argv).parse_args(argv)
    assert (args.src, args.dest, args.method, args.config) == ("/in", "/out", "blur", None)
    argv = ["anonymize", "--config", "a.toml"]
    assert build_parser(argv).parse_args(argv).src is None


def test_cli_reports_an_unknown_key_as_a_usage_error(tmp_path, capsys):
    from faceveil.cli import main

    path = _write(tmp_path, 'src = "/in"\ndest = "/out"\nmethods = "blur"\n')
    assert main(["anonymize", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "unknown key 'methods'" in err


def test_restore_table_allows_the_deployment_and_bounds_its_out(tmp_path):
    from faceveil.storage.state import StateError, check_allowed_out

    f = load_config_file(_write(tmp_path, 'src = "in"\ndest = "out"\n'))
    assert (f.restore_deploy, f.restore_roots) == (False, ())  # off unless asked for
    f = load_config_file(
        _write(
            tmp_path,
            'src = "in"\ndest = "out"\n[restore]\ndeploy = true\n'
            'roots = ["restored", "/srv/cases", "s3://bucket/restored"]\n',
        )
    )
    assert f.restore_deploy and f.restore_roots == (str(tmp_path / "restored"), "/srv/cases", "s3://bucket/restored")
    assert "restore" not in f.settings and f.anonymize_config().dest == str(tmp_path / "out")
    for out in (tmp_path / "restored/case-1", tmp_path / "restored", "/srv/cases/2026/114", "s3://bucket/restored/x"):
        check_allowed_out(str(out), f.restore_roots)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "restored").mkdir()
    (tmp_path / "restored/link").symlink_to(tmp_path / "elsewhere")
    for out in (
        tmp_path / "restored-2",
        tmp_path / "restored/../elsewhere",
        tmp_path / "restored/link/x",
        tmp_path,
        "/srv",
        "s3://bucket/restored-2",
        "s3://other/restored/x",
    ):
        with pytest.raises(StateError, match="not inside an allowed restore root .*nothing was written"):
            check_allowed_out(str(out), f.restore_roots)


@pytest.mark.parametrize(
    "table, message",
    [
        ("deploy = true\n", "deploy = true needs roots"),
        ("deploy = true\nroots = []\n", "deploy = true needs roots"),
        ('deploy = "yes"\nroots = ["/r"]\n', "deploy must be true or false"),
        ('roots = "/r"\n', "roots must be a list of folders"),
        ('roots = ["/r", ""]\n', "roots must be a list of folders"),
        ('deploy = true\nroots = ["/r"]\nout = "/r/x"\n', "[restore]: unknown key 'out'"),
    ],
)
def test_restore_table_errors(tmp_path, table, message):
    path = _write(tmp_path, 'src = "in"\ndest = "out"\n[restore]\n' + table)
    with pytest.raises(ConfigFileError) as e:
        load_config_file(path)
    assert str(path) in str(e.value) and message in str(e.value)
    with pytest.raises(ConfigFileError, match=r"\[restore\]: must be a table"):
        load_config_file(_write(tmp_path, "restore = true\n"))
