"""The Python entry points: what the command line does, callable from a program."""

from __future__ import annotations


def anonymize(src: str, dest: str, key=None, **settings) -> dict:
    """Anonymizes every face of the archive at `src` into `dest` (local folders or s3://; its private
    state beside DEST unless `state` is given); settings are the fields of
    `faceveil.config.AnonymizeConfig`. A reversible run takes the master key (`key`, a
    faceveil.storage.keys.MasterKey: its vault lock is derived from it). Returns the run summary."""
    from faceveil.config import AnonymizeConfig
    from faceveil.flows.launch import run_anonymize

    if key is not None and settings.get("vault_lock") is None:
        from faceveil.storage.keys import VaultLock

        settings["vault_lock"] = VaultLock.of(key)
    return run_anonymize(AnonymizeConfig.of(src=src, dest=dest, **settings), key)
