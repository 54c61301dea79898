"""The archive config file (TOML): AnonymizeConfig's settings (in their parts' tables or flat, one
table deciding where a key goes), the key by reference only, clear errors naming the file and the
key; `faceveil anonymize --config` with flags that override it."""

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
    assert (
        config.masking.method,
        config.cluster.workers,
        config.sealing.index,
        config.sealing.vault_lock.fingerprint,
    ) == ("blur", 1, True, key.fingerprint)


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
    fields = set(AnonymizeConfig.of("/in", "/out").flat())
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


SECTIONED = """src = "in"
dest = "out"
tracking_uri = "sqlite:///m.db"

[detection]
detector = "centerface"
threshold = 0.4
detect_every = 2
max_gap = 8

[masking]
method = "blur"
scope = "head"
pad = 0.5

[encoding]
crf = 20
lossless = true

[cluster]
workers = 2
scratch_dir = "scratch"

[sealing]
reversible = true
embedder = "dlib-resnet"

[checks]
check_every_s = 2
max_leak = 0.01
recheck = false

[key]
file = "archive.key"
"""

FLAT = """src = "in"
dest = "out"
tracking_uri = "sqlite:///m.db"
detector = "centerface"
threshold = 0.4
detect_every = 2
max_gap = 8
method = "blur"
scope = "head"
pad = 0.5
crf = 20
lossless = true
workers = 2
scratch_dir = "scratch"
reversible = true
embedder = "dlib-resnet"
check_every_s = 2
max_leak = 0.01
recheck = false

[key]
file = "archive.key"
"""


def test_sectioned_and_flat_files_give_the_same_config(tmp_path):
    lock = VaultLock.of(MasterKey.generate())
    sectioned = load_config_file(_write(tmp_path, SECTIONED, "sectioned.toml"))
    flat = load_config_file(_write(tmp_path, FLAT, "flat.toml"))
    assert sectioned.settings == flat.settings and sectioned.key_ref == flat.key_ref
    config = sectioned.anonymize_config(vault_lock=lock)
    assert config == flat.anonymize_config(vault_lock=lock)
    assert (config.detection.threshold, config.masking.scope, config.encoding.crf, config.checks.max_leak) == (
        0.4,
        "head",
        20,
        0.01,
    )
    assert config.cluster.scratch_dir == str(tmp_path / "scratch") and config.sealing.index
    mixed = 'src = "in"\ndest = "out"\nmethod = "blur"\n[detection]\nthreshold = 0.4\n'  # both forms in one file
    assert load_config_file(_write(tmp_path, mixed)).settings["threshold"] == 0.4


@pytest.mark.parametrize(
    "text, message",
    [
        ('[detection]\nmethod = "blur"\n', r"unknown key 'method' in \[detection\] \(it belongs in \[masking\]\)"),
        ("[masking]\nthresholds = 0.4\n", r"unknown key 'thresholds' in \[masking\] \(known: "),
        ('[detection]\nthreshold = "high"\n', r"key 'threshold' in \[detection\] must be float"),
        ("threshold = 0.3\n[detection]\nthreshold = 0.4\n", r"'threshold' in \[detection\] is set twice"),
        ('[sealing]\nvault_lock = "x"\n', r"'vault_lock' in \[sealing\] cannot be set in a config file"),
    ],
)
def test_section_errors_name_the_key_and_its_part(tmp_path, text, message):
    with pytest.raises(ConfigFileError, match=message):
        load_config_file(_write(tmp_path, text))


def _cli(tmp_path, toml: str, *flags):
    """(key, config) of `faceveil anonymize --config FILE FLAGS`, through the parser."""
    from faceveil.cli.configured import configured
    from faceveil.cli.parser import build_parser

    argv = ["anonymize", "--config", str(_write(tmp_path, toml)), *flags]
    return configured(build_parser(argv).parse_args(argv), argv)


def test_cli_flags_override_the_file_and_defaults_do_not(tmp_path):
    toml = 'src = "/in"\ndest = "/out"\nmethod = "blur"\nmax_leak = 0.02\ncheck_every_s = 2.0\nworkers = 3\n'
    _, config = _cli(tmp_path, toml)
    assert (
        config.masking.method,
        config.checks.max_leak,
        config.checks.check_every_s,
        config.cluster.workers,
        config.encoding.crf,
    ) == ("blur", 0.02, 2.0, 3, 18)
    _, config = _cli(
        tmp_path, toml, "--method", "mosaic", "--max-leak", "5", "--check-every", "8", "--crf", "20", "/other-in"
    )
    assert (
        config.src,
        config.dest,
        config.masking.method,
        config.checks.max_leak,
        config.checks.check_every_s,
        config.cluster.workers,
        config.encoding.crf,
    ) == ("/other-in", "/out", "mosaic", 0.05, 8.0, 3, 20)


def test_cli_key_from_the_file_reference_or_from_key(tmp_path, monkeypatch):
    key, other = MasterKey.generate(), MasterKey.generate()
    write_key_file(tmp_path / "archive.key", key)
    write_key_file(tmp_path / "other.key", other)
    toml = 'src = "/in"\ndest = "/out"\nreversible = true\n[key]\nfile = "archive.key"\n'
    got, config = _cli(tmp_path, toml)
    assert got.fingerprint == key.fingerprint == config.sealing.vault_lock.fingerprint and config.sealing.index
    got, config = _cli(tmp_path, toml, "--key", str(tmp_path / "other.key"))
    assert got.fingerprint == other.fingerprint == config.sealing.vault_lock.fingerprint
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


def test_the_documented_file_is_accepted():
    import tomllib

    from faceveil.config_file import parse_config

    doc = (Path(__file__).parents[1] / "docs/scheduled.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    f = parse_config(tomllib.loads(block), "archive.toml")
    assert (f.settings["method"], f.settings["workers"], f.settings["reversible"]) == ("mosaic", 4, True)
