"""The one mapping from `anonymize`'s (and `pulse`'s) command-line options, by argparse dest, to
AnonymizeConfig's settings by their flat keys, which are also the config file's keys
(faceveil/config_file.py) and go to their part by settings_parts.PART_OF (`setting_path`: where one
is read, e.g. "detection.threshold"): the plain command line (runs._config) and `--config FILE`
(configured.py) both build settings with it, through AnonymizeConfig.of."""

from __future__ import annotations


def _same(v):
    return v


# options whose dest is their field's name, in its unit
_AS_IS = (
    "src",
    "dest",
    "state",
    "method",
    "pulse",
    "detector",
    "threshold",
    "precision",
    "min_size",
    "scale",
    "detect_fps",
    "detect_mpx_per_s",
    "detect_every",
    "second_look",
    "track",
    "mask_shape",
    "scope",
    "pad",
    "max_gap",
    "lossless",
    "crf",
    "preset",
    "workers",
    "dask_address",
    "dask_tls_ca",
    "dask_tls_cert",
    "dask_tls_key",
    "gpu_workers",
    "mlflow_artifacts",
    "recheck",
)

# dest -> (AnonymizeConfig's flat key, conversion of the parsed value)
SETTING_FLAGS = {d: (d, _same) for d in _AS_IS} | {
    "reversible": ("reversible", lambda v: True if v else None),  # a switch that only turns on: off = the default
    "no_index": ("index", lambda v: False if v else None),
    "check_every": ("check_every_s", _same),
    "check_frames": ("check_max_frames", _same),
    "max_leak": ("max_leak", lambda v: v / 100),  # percent on the command line, a fraction in the config
    "mlflow_uri": ("tracking_uri", _same),
}

# dests of the options that are no setting of the run
NOT_SETTINGS = {
    "command": "the subcommand",
    "argv": "the command line itself (cli.main keeps it to tell the flags given)",
    "config": "the config file the settings come from",
    "key": "the key file: the config holds only the lock derived from it (vault_lock)",
    "passphrase": "the key from a passphrase: likewise",
    "dry_run": "print the plan instead of running",
    "json": "how the summary is printed",
    "quiet": "no progress bars",
    "verbose": "Prefect's and Dask's logs",
}


def cli_settings(args, dests) -> dict:
    """AnonymizeConfig's flat keys from the parsed options `dests` (a dest in neither table is an error:
    a new option must be mapped here or named as no setting)."""
    out = {}
    for dest in dests:
        if dest in SETTING_FLAGS:
            name, convert = SETTING_FLAGS[dest]
            out[name] = convert(getattr(args, dest))
        elif dest not in NOT_SETTINGS:
            raise KeyError(f"option {dest!r} is neither mapped to a setting nor listed as none (cli/settings_map.py)")
    return out
