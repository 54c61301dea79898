"""One archive's settings in a TOML file, read by `faceveil anonymize --config FILE` (command-line
flags override it) and by the scheduled deployments (faceveil/flows/scheduled.py). Its keys are
AnonymizeConfig's settings by their flat names and units, at the top level or in the table of their
part (`[detection] threshold = 0.4`, `[masking] method = "blur"`; faceveil/settings_parts.py), the
one table PART_OF deciding which part a key belongs to (a key in another part's table is an error
naming its part); the key is named by a reference in a `[key]` table, never
given: exactly one of `file = PATH` (a key file), `env = NAME` (an environment variable of the process
that runs the flow) or `prefect_secret = NAME` (a Prefect Secret block). A `[restore]` table allows
the restore deployment: `deploy = true` registers it (default false) and `roots = [...]` lists the
folders (or s3:// prefixes) its `out` must lie inside. Relative paths are relative to the file. An
unknown key, or a value of the wrong type, is an error naming the file and the key."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from faceveil.config import OWN_KEYS, AnonymizeConfig
from faceveil.settings_parts import PART_OF, PARTS

KEY_REF_KINDS = ("file", "env", "prefect_secret")
RESTORE_KEYS = ("deploy", "roots")

# AnonymizeConfig fields a file may not set: derived in the run (the vault's public lock from the key;
# the run state: the index's template view, the second pass), or a place for credentials (use the AWS environment).
NOT_IN_FILE = {
    "vault_lock": "the vault's lock is derived from the key: name the key in the [key] table",
    "storage_options": "storage credentials never go in a config file: use the AWS environment or an instance role",
    "run_state": "set by the run itself (the leak gate's second pass; the template view an index was created with)",
}
_PATH_FIELDS = (
    "src",
    "dest",
    "state",
    "scratch_dir",
    "dask_tls_ca",
    "dask_tls_cert",
    "dask_tls_key",
    "mlflow_artifacts",
)
_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "None": type(None)}


class ConfigFileError(ValueError):
    """A config file that cannot be used; names the file and the key."""


@dataclass(frozen=True)
class ConfigFile:
    """What a config file says: `settings` (AnonymizeConfig fields), `key_ref` (a reference to
    the master key, or None) and its [restore] table: whether the restore deployment is registered,
    and the roots its `out` must lie inside."""

    path: str
    settings: dict = field(default_factory=dict)
    key_ref: dict | None = None
    restore_deploy: bool = False
    restore_roots: tuple[str, ...] = ()

    @property
    def needs_key(self) -> bool:
        return bool(self.settings.get("reversible")) or self.settings.get("method") == "scramble"

    def anonymize_config(self, overrides: dict | None = None, vault_lock=None) -> AnonymizeConfig:
        """The run's AnonymizeConfig: the file's settings, then `overrides` (fields, e.g. from the
        command line), and the vault's public lock (derived from the key by the caller)."""
        values = {**self.settings, **(overrides or {})}
        for name in ("src", "dest"):
            if not values.get(name):
                raise ConfigFileError(f"{self.path}: {name!r} is not set (in the file or on the command line)")
        return AnonymizeConfig.of(**values, vault_lock=vault_lock)


def settable_fields() -> dict[str, tuple[type, ...]]:
    """The flat keys a config file may set (the parts' fields, and src, dest and the config's own
    locations) -> the types a value may have."""
    out = {}
    own = [f for f in dataclasses.fields(AnonymizeConfig) if f.name in ("src", "dest", *OWN_KEYS)]
    for f in own + [f for cls in PARTS.values() for f in dataclasses.fields(cls)]:
        if f.name in NOT_IN_FILE:
            continue
        types = tuple(_TYPES[t.strip()] for t in str(f.type).split("|") if t.strip() in _TYPES)
        if float in types:
            types += (int,)  # 30 means 30.0
        if types:  # a field of another type (replace_options, a table) is not for files
            out[f.name] = types
    return out


def load_config_file(path: str | os.PathLike) -> ConfigFile:
    """Reads and checks `path`; the key is not read (see faceveil.flows.key_refs.resolve_key)."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigFileError(f"{path}: not valid TOML ({e})") from None
    return parse_config(data, path)


def parse_config(data: dict, path: str | os.PathLike) -> ConfigFile:
    path = Path(path)
    base = path.resolve().parent
    fields = settable_fields()
    settings, key_ref, restore = {}, None, (False, ())
    for name, value in data.items():
        if name == "key":
            key_ref = check_key_ref(value, f"{path}: [key]", base)
        elif name == "restore":
            restore = check_restore_table(value, f"{path}: [restore]", base)
        elif name in PARTS and isinstance(value, dict):
            for key, v in value.items():
                if PART_OF.get(key) != name and key not in NOT_IN_FILE:
                    where = f"it belongs in [{PART_OF[key]}]" if key in PART_OF else f"known: {', '.join(_in(name))}"
                    raise ConfigFileError(f"{path}: unknown key {key!r} in [{name}] ({where})")
                _set(settings, key, v, (path, f" in [{name}]"), fields, base)
        else:
            _set(settings, name, value, (path, ""), fields, base)
    return ConfigFile(str(path), settings, key_ref, *restore)


def _in(part: str) -> list[str]:
    return sorted(k for k, p in PART_OF.items() if p == part and k not in NOT_IN_FILE)


def _set(settings: dict, name: str, value, at: tuple[Path, str], fields: dict, base: Path) -> None:
    """settings[name] = the checked value (a path made absolute, an int made a float where one is meant);
    `at`: the file and the table the key is in (" in [detection]", or "" at the top level)."""
    where = f"{at[0]}: key {name!r}{at[1]}"
    if name in NOT_IN_FILE:
        raise ConfigFileError(f"{where} cannot be set in a config file ({NOT_IN_FILE[name]})")
    if name not in fields:
        known = ", ".join(["key", "restore", *[f"[{p}]" for p in PARTS], *sorted(fields)])
        raise ConfigFileError(f"{at[0]}: unknown key {name!r}{at[1]} (known: {known})")
    if name in settings:
        raise ConfigFileError(f"{where} is set twice (at the top level and in [{PART_OF[name]}])")
    types = fields[name]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types if t is not type(None))
        raise ConfigFileError(f"{where} must be {wanted}, not {type(value).__name__} ({value!r})")
    if name in _PATH_FIELDS and isinstance(value, str):
        value = _local(value, base)
    settings[name] = (
        float(value) if float in types and isinstance(value, int) and not isinstance(value, bool) else value
    )


def check_key_ref(ref, where: str, base: Path | None = None) -> dict:
    """A key reference: a table with exactly one of file / env / prefect_secret, a non-empty string
    (a relative file path is taken relative to `base`)."""
    if not isinstance(ref, dict):
        raise ConfigFileError(f"{where}: must be a table naming the key: one of {', '.join(KEY_REF_KINDS)}")
    unknown = sorted(set(ref) - set(KEY_REF_KINDS))
    if unknown:
        raise ConfigFileError(
            f"{where}: unknown key {unknown[0]!r} (a reference is one of: {', '.join(KEY_REF_KINDS)}; "
            "the key itself never goes in a config file)"
        )
    if len(ref) != 1:
        raise ConfigFileError(f"{where}: give exactly one of {', '.join(KEY_REF_KINDS)}")
    ((kind, value),) = ref.items()
    if not isinstance(value, str) or not value:
        raise ConfigFileError(f"{where}: {kind} must be a non-empty string")
    if kind == "file" and base is not None:
        value = _local(value, base)
    return {kind: value}


def check_restore_table(table, where: str, base: Path) -> tuple[bool, tuple[str, ...]]:
    """(deploy, roots) of a [restore] table: `deploy` a bool (default false), `roots` a list of
    folders or s3:// prefixes (relative ones taken relative to `base`), required with deploy = true."""
    if not isinstance(table, dict):
        raise ConfigFileError(f"{where}: must be a table (deploy = true|false, roots = [FOLDER, ...])")
    unknown = sorted(set(table) - set(RESTORE_KEYS))
    if unknown:
        raise ConfigFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(RESTORE_KEYS)})")
    deploy, roots = table.get("deploy", False), table.get("roots", [])
    if not isinstance(deploy, bool):
        raise ConfigFileError(f"{where}: deploy must be true or false, not {deploy!r}")
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise ConfigFileError(f"{where}: roots must be a list of folders (or s3:// prefixes), not {roots!r}")
    if deploy and not roots:
        raise ConfigFileError(
            f"{where}: deploy = true needs roots = [FOLDER, ...], the folders a restore's out must lie inside"
        )
    return deploy, tuple(_local(r, base) for r in roots)


def _local(value: str, base: Path) -> str:
    """A local path relative to the config file made absolute; URLs (s3://...) stay as they are."""
    if "://" in value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)
