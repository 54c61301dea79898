"""Keyed block scrambling of a face region (after the block-scrambling encryption used for
surveillance video): blocks are permuted, each is rotated/flipped and has its colour channels
permuted, and every pixel is XOR-masked, all driven by an AES-CTR keystream of a per-region key.
`unscramble` with the same key inverts it exactly (on lossless storage)."""

from __future__ import annotations

import numpy as np

_CHANNEL_PERMS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def region_key(data_key: bytes, media_id: str, frame: int, track: int, region=None) -> bytes:
    """The key of one face region: HKDF(track data key, media, frame, track). Untracked faces
    (track < 0) share one data key, so their region (x1, y1, x2, y2) is bound in too: every face of
    a frame gets its own keystream, with or without tracking."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = f"faceveil scramble\x00{media_id}\x00{int(frame)}\x00{int(track)}"
    if track < 0:
        if region is None:
            raise ValueError("an untracked face's scramble key needs its region")
        info += "\x00" + ",".join(str(int(v)) for v in region)
    info = info.encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(data_key)


def keystream(key: bytes, n: int) -> np.ndarray:
    """n pseudo-random bytes: AES-256-CTR over zeros (key must be 32 bytes, used for one region)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(key), modes.CTR(b"\x00" * 16)).encryptor()
    return np.frombuffer(enc.update(b"\x00" * n) + enc.finalize(), np.uint8)


def _plan(key: bytes, shape: tuple[int, int, int], block: int):
    h, w = shape[:2]
    gh, gw = h // block, w // block
    nb = gh * gw
    ks = keystream(key, nb * 8 + nb * 2 + h * w * 3)
    order = np.argsort(ks[: nb * 8].view(np.uint64), kind="stable")
    rest = ks[nb * 8 :]
    orient, chans = rest[:nb] % 8, rest[nb : 2 * nb] % 6
    mask = rest[2 * nb :].reshape(h, w, 3)
    return gh, gw, order, orient, chans, mask


def _tiles(a: np.ndarray, gh: int, gw: int, block: int) -> np.ndarray:
    return a[: gh * block, : gw * block].reshape(gh, block, gw, block, 3).swapaxes(1, 2).reshape(-1, block, block, 3)


def _untile(t: np.ndarray, gh: int, gw: int, block: int) -> np.ndarray:
    return t.reshape(gh, gw, block, block, 3).swapaxes(1, 2).reshape(gh * block, gw * block, 3)


def _orient(b: np.ndarray, o: int, inverse: bool) -> np.ndarray:
    k, flip = int(o) % 4, int(o) >= 4
    if inverse:
        return np.rot90(b[:, ::-1] if flip else b, -k)
    b = np.rot90(b, k)
    return b[:, ::-1] if flip else b


def scramble(region: np.ndarray, key: bytes, block: int = 8) -> np.ndarray:
    """A same-shape uint8 array revealing nothing of `region` without `key`."""
    gh, gw, order, orient, chans, mask = _plan(key, region.shape, block)
    out = region.copy()
    if gh and gw:
        tiles = _tiles(region, gh, gw, block)
        new = np.empty_like(tiles)
        for dst, src in enumerate(order):
            new[dst] = _orient(tiles[src], orient[dst], False)[:, :, _CHANNEL_PERMS[chans[dst]]]
        out[: gh * block, : gw * block] = _untile(new, gh, gw, block)
    return out ^ mask


def unscramble(region: np.ndarray, key: bytes, block: int = 8) -> np.ndarray:
    """The exact inverse of `scramble` with the same key and block size."""
    gh, gw, order, orient, chans, mask = _plan(key, region.shape, block)
    out = region ^ mask
    if gh and gw:
        tiles = _tiles(out, gh, gw, block)
        orig = np.empty_like(tiles)
        inv_ch = np.argsort(_CHANNEL_PERMS, axis=1)
        for dst, src in enumerate(order):
            orig[src] = _orient(tiles[dst][:, :, inv_ch[chans[dst]]], orient[dst], True)
        out[: gh * block, : gw * block] = _untile(orig, gh, gw, block)
    return out
