"""`faceveil anonymize --config FILE`: the file's settings, overridden by the flags the command line
gives; the key from --key / --passphrase when given, else from the file's [key] reference, else
$FACEVEIL_KEY (as without a file)."""

from __future__ import annotations

import os
import sys


def configured(args, argv: list[str] | None = None):
    """(master key or None, AnonymizeConfig) of an anonymize command line with --config."""
    from faceveil.cli.keyed import _master, archive_state
    from faceveil.cli.parser import given_options
    from faceveil.cli.settings_map import cli_settings
    from faceveil.config_file import load_config_file
    from faceveil.storage.keys import VaultLock

    file = load_config_file(args.config)
    given = given_options(sys.argv[1:] if argv is None else argv)
    values = {**cli_settings(args, vars(args)), **file.settings, **cli_settings(args, given)}
    key = lock = None
    if values.get("reversible") or values.get("method") == "scramble":
        if given & {"key", "passphrase"} or file.key_ref is None:
            key, kdf = _master(args, archive_state(args, values.get("dest") or ".", values.get("state")))
        else:
            from faceveil.flows.key_refs import env_names, resolve_key

            key, kdf = resolve_key(file.key_ref), None
            for name in env_names(file.key_ref):  # read: none of the processes the run starts inherits it
                os.environ.pop(name, None)
        lock = VaultLock.of(key, kdf)
    return key, file.anonymize_config(overrides=values, vault_lock=lock)
