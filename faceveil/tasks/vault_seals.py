"""What a reversible run's flow process holds of the key (never a worker, never a flow parameter): the
identity index's template protection and the control-file key; and what it does with the latter:
reading the tombstones of forgotten people for the media to do, and sealing each media's vault key
part from the part's digest its task reported (storage/vault_control.seal_part); and the vault's check
before a run (open_vault)."""

from __future__ import annotations

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.places import state_of
from faceveil.storage.control import control_key
from faceveil.storage.vault_control import seal_part


class RunKeys:
    """The run's keys derived from the master key: `index` (the index's template protection, when
    the run indexes), `control` (the control-file MAC key) and the master key's fingerprint. Shown
    and pickled never."""

    __slots__ = ("index", "control", "fingerprint")

    def __init__(self, index, control: bytes, fingerprint: str):
        self.index, self.control, self.fingerprint = index, control, fingerprint

    def __repr__(self) -> str:
        return f"RunKeys({self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("run keys are not pickled")


def run_keys(config: AnonymizeConfig, key) -> RunKeys | None:
    """The keys of a reversible run (None for any other); the key must be the vault's."""
    if not config.sealed:
        return None
    if key is None or not key.matches(config.sealing.vault_lock.fingerprint):
        raise ValueError("a reversible run needs the master key itself (the one the vault is locked with)")
    from faceveil.models.embedders import EMBEDDERS
    from faceveil.pipeline.sealed_index import index_keys

    index = index_keys(key, EMBEDDERS.get(config.sealing.embedder).dim) if config.sealing.index else None
    return RunKeys(index, control_key(key), key.fingerprint)


def mark_forgotten(config: AnonymizeConfig, items: list, keys: RunKeys) -> int:
    """Gives each media still to do the places of its forgotten people (their tombstones, MACs
    checked here), so its task seals and indexes no face found there; returns how many media have
    some."""
    from faceveil.storage import tombstones

    state, n = state_of(config), 0
    for item in items:
        if not item.done and not item.error:
            item.forgotten = tombstones.marks(state, keys.control, item.media_id)
            n += item.forgotten is not None
    return n


def seal_vault_parts(config: AnonymizeConfig, results, keys: RunKeys) -> int:
    """Seals the key part of every media the run published with a vault; returns how many. A media
    whose seal is missing (the run stopped before this) counts as not done: the next run redoes it."""
    state, n = state_of(config), 0
    for res in results:
        if res.row.get("status") == "ok" and res.row.get("vault_keys_sha256"):
            seal_part(state, keys.control, keys.fingerprint, res.row["media_id"], res.row["vault_keys_sha256"])
            n += 1
    return n


def open_vault(config: AnonymizeConfig, keys: RunKeys | None) -> AnonymizeConfig:
    """For a reversible run: the vault's key must be this run's and its keyinfo's MAC hold (refused
    before anything is written); a new archive gets its vault keyinfo. Returns the config whose lock
    seals for this archive (its id). Without `keys` (a throwaway key nobody keeps, e.g. evaluate's
    scramble) keyinfo is not signed."""
    from dataclasses import replace

    from faceveil.storage.vault import check_key

    info = check_key(
        state_of(config),
        config.sealing.vault_lock.fingerprint,
        create=config.sealing.vault_lock,
        control=keys.control if keys else None,
    )
    return config.changed(vault_lock=replace(config.sealing.vault_lock, archive_id=info.get("archive_id")))
