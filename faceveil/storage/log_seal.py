"""The access log's forward-secure seal, apart from the master key (after Bellare-Yee and
Schneier-Kelsey). The auditor (the DPO) holds the log key K0 (`faceveil log-key`): the key of the
row at seq `start`. Row i's key is K_i = HMAC(K_{i-1}, "next"); every row from `start` on carries
`fs_tag` = HMAC(K_seq, its fields, prev_mac and mac). The state root keeps only the key of the next
row, K_e (`log_seal/<e, 12 digits>.json`: e, start, the log key's id, the commitment SHA-256(K_e) in
clear, and K_e sealed under a key derived from the master key's access-log MAC key), so every key
holder can append; each append replaces it with the next one. The evolution is one-way: nobody
can tag a row again once it is written, so a restorer who edits or removes a row and re-signs the
master-key chain leaves tags that the log key's holder finds wrong, and a state ahead of the log's
last row says rows were cut.

Limits: a key holder who kept K_n (in memory, or a copy of the state file as it was before row n)
can still rewrite rows from n on, or cut the log back to n-1; so can anyone who rolls the whole
state root back to a copy. Old states deleted from a versioned bucket, a snapshot or a backup stay
readable there. The log's heads recorded elsewhere (log_anchors) catch these only as far as they
live out of that person's reach.
`check` is over 60 lines: one walk over the sealing state and the rows, each problem with a message of
its own."""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass, field

from faceveil.storage.auditor_key import LogKey, commitment, evolve, tag_ok
from faceveil.storage.keys import KEY_BYTES, MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.sealing import SealError, associated_data, open_sealed, seal

FOLDER = "log_seal"
MAX_AHEAD = 1_000_000  # a state further ahead of the log than this is not evolved to (a cut anyway)
_NAME = re.compile(r"^(\d{12})\.json$")


class SealStateError(RuntimeError):
    """The log's sealing state cannot be read, opened or written (never carries key material)."""


# ---------------------------------------------------------------- the state in the state root


@dataclass(frozen=True)
class State:
    """One sealing state file: K_epoch sealed (`sealed`, hex) for the master key `key_fingerprint`."""

    epoch: int
    start: int
    log_key_id: str
    commitment: str
    key_fingerprint: str
    sealed: str = field(repr=False)
    rel: str = ""


def _wrapping_key(mac_key: bytes) -> bytes:
    return MasterKey(mac_key).derive("access-log/forward-secure-state")


def _aad(epoch: int, start: int, log_key_id: str, commit: str, fingerprint: str) -> bytes:
    return associated_data(
        purpose="access-log seal",
        epoch=int(epoch),
        start=int(start),
        log_key=str(log_key_id),
        commitment=str(commit),
        key=str(fingerprint),
    )


def states(loc: Location) -> dict[int, str]:
    """{epoch: relative path} of the sealing state files."""
    folder = loc.path(FOLDER)
    try:
        if loc.is_local:
            names = os.listdir(folder) if os.path.lexists(folder) else []
        else:
            loc.fs.invalidate_cache(folder)
            names = [p.rsplit("/", 1)[-1] for p in loc.fs.ls(folder, detail=False)] if loc.fs.exists(folder) else []
    except OSError as e:
        raise SealStateError(f"{folder}: cannot read the access log's sealing state ({e.strerror or e})") from None
    return {int(m.group(1)): f"{FOLDER}/{m.group(0)}" for m in map(_NAME.match, names) if m}


def read_state(loc: Location) -> State | None:
    """The newest sealing state, None when the log has none (no log key set up)."""
    for _ in range(100):  # the newest one may be pruned between listing and reading: list again
        found = states(loc)
        if not found:
            return None
        rel = found[max(found)]
        try:
            d = json.loads(loc.read_bytes(rel))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise SealStateError(f"{loc.display(rel)}: unreadable sealing state ({type(e).__name__})") from None
        try:
            state = State(
                int(d["epoch"]),
                int(d["start"]),
                str(d["log_key_id"]),
                str(d["commitment"]),
                str(d["key_fingerprint"]),
                str(d["sealed"]),
                rel,
            )
        except (KeyError, TypeError, ValueError):
            raise SealStateError(f"{loc.display(rel)}: malformed sealing state") from None
        if state.epoch != max(found):
            raise SealStateError(f"{loc.display(rel)}: holds seq {state.epoch} (renamed)")
        return state
    raise SealStateError(f"{loc.display(FOLDER)}: the sealing state kept changing while read")


def open_key(loc: Location, state: State, mac_key: bytes) -> bytes:
    """K_epoch of `state`, opened with the access-log MAC key of its master key."""
    try:
        k = open_sealed(
            _wrapping_key(mac_key),
            bytes.fromhex(state.sealed),
            _aad(state.epoch, state.start, state.log_key_id, state.commitment, state.key_fingerprint),
            "the access log's sealing state",
        )
    except (SealError, ValueError) as e:
        raise SealStateError(f"{loc.display(state.rel)}: {e}") from None
    if len(k) != KEY_BYTES or not hmac.compare_digest(commitment(k).encode(), state.commitment.encode()):
        raise SealStateError(f"{loc.display(state.rel)}: the sealed key does not match its commitment")
    return k


def write_state(
    loc: Location, mac_key: bytes, fingerprint: str, epoch: int, start: int, log_key_id: str, k: bytes
) -> bool:
    """Writes the state of `epoch` (K_epoch = k) unless one is there already, then removes every older
    one (their keys could tag rows written since). False when that epoch's state existed."""
    commit = commitment(k)
    sealed = seal(_wrapping_key(mac_key), k, _aad(epoch, start, log_key_id, commit, fingerprint)).hex()
    body = {
        "version": 1,
        "epoch": int(epoch),
        "start": int(start),
        "log_key_id": log_key_id,
        "commitment": commit,
        "key_fingerprint": fingerprint,
        "sealed": sealed,
    }
    try:
        created = loc.create_bytes(f"{FOLDER}/{int(epoch):012d}.json", json.dumps(body, sort_keys=True).encode())
        prune(loc)
    except OSError as e:
        raise SealStateError(
            f"{loc.display(FOLDER)}: cannot write the access log's sealing state "
            f"({type(e).__name__}: {e.strerror or e})"
        ) from None
    return created


def prune(loc: Location) -> None:
    """Removes every state but the newest (each writer does it after writing its own: the last one to
    list sees them all)."""
    found = states(loc)
    for epoch, rel in found.items():
        if epoch < max(found):
            try:
                loc.fs.rm(loc.path(rel))
            except FileNotFoundError:
                pass


def set_up(loc: Location, mac_key: bytes, fingerprint: str, start: int) -> LogKey:
    """A new log key for the rows from `start` on, its state written; refuses when the log has one."""
    if states(loc):
        raise SealStateError(f"{loc.display(FOLDER)}: this access log has a log key set up already")
    key = LogKey.generate(start)
    if not write_state(loc, mac_key, fingerprint, start, start, key.id, key._b):
        raise SealStateError(f"{loc.display(FOLDER)}: a log key was set up meanwhile")
    return key


def undo_set_up(loc: Location, key: LogKey) -> None:
    """Removes the state `set_up` wrote for `key` (its key file could not be written)."""
    state = read_state(loc)
    if state is not None and state.log_key_id == key.id and state.epoch == key.start:
        loc.fs.rm(loc.path(state.rel))


# ---------------------------------------------------------------- the auditor's check


def _tag_ok(k: bytes, payload, row: dict, given) -> bool:
    try:
        return tag_ok(k, payload(row), given)
    except (ValueError, TypeError, AttributeError):  # a field damaged past reading
        return False


def check(loc: Location, rows: dict[int, dict], last: int, key: LogKey, payload) -> list[tuple[int, str]]:
    """(seq, problem) with the log key: every row's tag from `start` on, the state's seq (ahead of the
    log's last row `last`: rows cut) and its key commitment. `payload(row)` gives what a tag covers."""
    found: list[tuple[int, str]] = []
    files = states(loc)
    found += [
        (e, f"{loc.display(rel)}: a stale sealing state for seq {e} (its key could re-sign the rows from seq {e} on)")
        for e, rel in sorted(files.items())
        if e < max(files)
    ]
    try:
        state = read_state(loc)
    except SealStateError as e:
        state = None
        found.append((last + 1, str(e)))
    if state is not None and not hmac.compare_digest(state.log_key_id.encode(), key.id.encode()):
        return found + [
            (
                0,
                f"the log is sealed with another log key ({state.log_key_id}, from seq {state.start}); "
                f"this one is {key.id}",
            )
        ]
    if state is not None and state.start != key.start:
        found.append(
            (0, f"the sealing state says the log key starts at seq {state.start}, the key file at seq {key.start}")
        )
    k, at = key._b, key.start
    for seq in sorted(s for s in rows if s >= key.start):
        k, at = evolve(k, seq - at), seq
        given = rows[seq].get("fs_tag")
        if not given:
            found.append((seq, f"seq {seq}: no forward-secure tag (written without the log's sealing state)"))
        elif not _tag_ok(k, payload, rows[seq], given):
            found.append((seq, f"seq {seq}: forward-secure tag mismatch (edited, or re-signed by a key holder)"))
    if state is None:
        if not files:
            found.append(
                (
                    last + 1,
                    f"{loc.display(FOLDER)}: the log's sealing state is missing (removed?): "
                    "a cut of the newest rows cannot be seen",
                )
            )
        return found
    if state.epoch > last + 1:
        found.append((last + 1, f"rows after seq {last} were removed: the log's sealing state is at seq {state.epoch}"))
    elif state.epoch < last + 1:
        found.append(
            (
                state.epoch,
                f"the log's sealing state is at seq {state.epoch}, behind its last row {last}: "
                f"rows from seq {state.epoch} on could be re-signed by a key holder (an append "
                "that stopped half-way, or the state was rolled back)",
            )
        )
    if state.epoch < key.start or state.epoch - at > MAX_AHEAD:
        found.append((state.epoch, f"{loc.display(state.rel)}: the sealing state's seq {state.epoch} is out of range"))
    elif not hmac.compare_digest(
        commitment(evolve(k, state.epoch - at) if state.epoch >= at else key.key_at(state.epoch)).encode(),
        state.commitment.encode(),
    ):
        found.append(
            (state.epoch, f"{loc.display(state.rel)}: the sealing state's key is not the log key's (replaced)")
        )
    return found
