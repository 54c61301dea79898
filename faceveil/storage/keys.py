"""Master keys: generated, kept in a 0600 key file, an environment variable or derived from a
passphrase (Argon2id, parameters stored with the archive); sub-keys by HKDF; the vault's X25519 key
pair derived from it (sealing wraps data keys with it); fingerprints that identify a key without
revealing it. A key never appears in repr(), logs or exceptions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
_PREFIX = "faceveil-key-v1:"
ENV_VAR = "FACEVEIL_KEY"
SECRET_ENV = (ENV_VAR, "FACEVEIL_PASSPHRASE")  # never passed on to worker or server processes


class BadKeyError(ValueError):
    """A key that cannot be used (missing, malformed, wrong). Never carries key material."""


class MasterKey:
    """32 secret bytes. `fingerprint` is safe to log and to write into reports."""

    __slots__ = ("_b",)

    def __init__(self, material: bytes):
        if not isinstance(material, (bytes, bytearray)) or len(material) != KEY_BYTES:
            raise BadKeyError(f"a master key is {KEY_BYTES} bytes")
        self._b = bytes(material)

    @classmethod
    def generate(cls) -> "MasterKey":
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_passphrase(cls, passphrase: str, kdf: "PassphraseKDF") -> "MasterKey":
        """The key `kdf` (an archive's stored parameters and salt, not secret) makes of `passphrase`."""
        if not passphrase:
            raise BadKeyError("empty passphrase")
        return cls(kdf.derive(passphrase.encode()))

    def derive(self, purpose: str, context: bytes = b"", length: int = KEY_BYTES) -> bytes:
        """A sub-key for one purpose (HKDF-SHA256), so one master key serves vault, index and scrambling."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(hashes.SHA256(), length, salt=None, info=purpose.encode() + b"\x00" + context).derive(self._b)

    @property
    def fingerprint(self) -> str:
        """'fv1:' + 16 hex digits of HMAC-SHA256(key, label): identifies, reveals nothing."""
        return "fv1:" + hmac.new(self._b, b"faceveil key fingerprint", hashlib.sha256).hexdigest()[:16]

    def matches(self, fingerprint: str) -> bool:
        """Constant-time check against a stored fingerprint."""
        return hmac.compare_digest(self.fingerprint.encode(), fingerprint.encode())

    def __repr__(self) -> str:
        return f"MasterKey({self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("master keys are not pickled")


MIN_KDF = {
    "argon2id": {"iterations": 2, "memory_kib": 65536, "lanes": 1},  # OWASP's floor for Argon2id
    "scrypt": {"n": 2**14, "r": 8, "p": 1},
}


@dataclass(frozen=True)
class PassphraseKDF:
    """How a passphrase becomes a master key, stored in the archive's keyinfo: Argon2id for new
    archives (3 passes over 256 MiB, 4 lanes: about 0.65 s on the 2-core reference machine, so each
    guess costs an attacker as much), or scrypt (N=2^15, r=8, p=1) for archives made before."""

    name: str  # "argon2id" or "scrypt"
    salt_hex: str
    iterations: int = 3  # argon2id
    memory_kib: int = 262144
    lanes: int = 4
    n: int = 2**15  # scrypt
    r: int = 8
    p: int = 1

    def __post_init__(self):
        if self.name not in ("argon2id", "scrypt"):
            raise BadKeyError(f"unknown passphrase KDF {self.name!r}")
        if len(bytes.fromhex(self.salt_hex)) < 16:
            raise BadKeyError("a passphrase salt must be at least 16 bytes")
        weak = [f"{k} {getattr(self, k)} < {v}" for k, v in MIN_KDF[self.name].items() if getattr(self, k) < v]
        if weak:  # a keyinfo planted with cheap parameters would make every guess cheap
            raise BadKeyError(f"passphrase KDF {self.name} with weak parameters ({', '.join(weak)}): refused")

    @classmethod
    def new(cls) -> "PassphraseKDF":
        return cls("argon2id", secrets.token_hex(16))

    @classmethod
    def from_dict(cls, d: dict) -> "PassphraseKDF":
        fields = (
            ("name", "salt_hex", "iterations", "memory_kib", "lanes")
            if d.get("name") == "argon2id"
            else ("name", "salt_hex", "n", "r", "p")
        )
        return cls(**{k: d[k] for k in fields if k in d})

    def as_dict(self) -> dict:
        if self.name == "argon2id":
            return {
                "name": self.name,
                "salt_hex": self.salt_hex,
                "iterations": self.iterations,
                "memory_kib": self.memory_kib,
                "lanes": self.lanes,
            }
        return {"name": self.name, "salt_hex": self.salt_hex, "n": self.n, "r": self.r, "p": self.p}

    def derive(self, secret: bytes) -> bytes:
        salt = bytes.fromhex(self.salt_hex)
        if self.name == "scrypt":
            return hashlib.scrypt(secret, salt=salt, n=self.n, r=self.r, p=self.p, maxmem=2**26, dklen=KEY_BYTES)
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(
            salt=salt, length=KEY_BYTES, iterations=self.iterations, lanes=self.lanes, memory_cost=self.memory_kib
        ).derive(secret)


def vault_public_key(master: MasterKey) -> bytes:
    """The X25519 public key that wraps data keys. Workers that anonymize get only this, so they can
    seal originals but never open them; unwrapping needs the master key."""
    return _private(master).public_key().public_bytes_raw()


def _private(master: MasterKey):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.from_private_bytes(master.derive("vault/x25519"))


@dataclass(frozen=True)
class VaultLock:
    """What a worker needs to seal into a vault: the master's public key (hex) and fingerprint.
    Public: it can seal, never open."""

    public_hex: str
    fingerprint: str
    kdf: PassphraseKDF | None = None  # when the key came from a passphrase
    archive_id: str | None = None  # the vault's archive (from its keyinfo), bound into everything sealed

    @classmethod
    def of(cls, master: MasterKey, kdf: PassphraseKDF | None = None) -> "VaultLock":
        return cls(vault_public_key(master).hex(), master.fingerprint, kdf)


def encode_key(key: MasterKey) -> str:
    return _PREFIX + base64.urlsafe_b64encode(key._b).decode()


def decode_key(text: str, source: str) -> MasterKey:
    text = text.strip()
    if not text.startswith(_PREFIX):
        raise BadKeyError(f"{source}: not a faceveil key (expected the {_PREFIX} prefix)")
    try:
        raw = base64.urlsafe_b64decode(text[len(_PREFIX) :].encode())
    except (ValueError, TypeError):
        raise BadKeyError(f"{source}: malformed key") from None
    if len(raw) != KEY_BYTES:
        raise BadKeyError(f"{source}: malformed key (wrong length)")
    return MasterKey(raw)


def write_key_file(path: str | Path, key: MasterKey, *, overwrite: bool = False) -> None:
    """Creates the key file readable by its owner only (0600); refuses to replace one."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise BadKeyError(f"{path}: a key file already exists (not overwritten)") from None
    with os.fdopen(fd, "w") as f:
        f.write(encode_key(key) + "\n")
    os.chmod(path, 0o600)


def load_key(path: str | Path | None = None, *, env: str = ENV_VAR) -> MasterKey:
    """From a key file when given, else from the environment variable `env`."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise BadKeyError(f"{path}: key file not found")
        if path.stat().st_mode & 0o077:
            raise BadKeyError(f"{path}: key file is readable by others; chmod 600 it")
        return decode_key(path.read_text(), str(path))
    if os.environ.get(env):
        return decode_key(os.environ[env], f"${env}")
    raise BadKeyError(f"no key: pass a key file or set ${env}")
