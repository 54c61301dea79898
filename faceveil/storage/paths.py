"""Archive locations on any fsspec filesystem (local folders, s3://): listing, safe relative
paths, local working copies and atomic commits."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import fsspec

META_DIR = "_faceveil"  # where archives made before the state root kept their private files, inside DEST


class PathError(ValueError):
    """A path that must not be used (escapes its root, control characters, ...)."""


def safe_relpath(rel: str) -> str:
    """A normalised '/'-separated relative path that stays inside its root, or PathError. Names are
    taken literally: ':' (timestamped camera exports) and '\\' are ordinary characters here, not
    drive or folder separators; control characters are refused (they forge log lines and terminals)."""
    if not rel or any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        raise PathError(f"{rel!r}: empty path or control characters in the name")
    if os.sep == "\\":  # where the OS takes it as a separator it is one (so ..\\x cannot escape)
        rel = rel.replace("\\", "/")
    norm = posixpath.normpath(rel)
    if norm.startswith(("/", "../")) or norm in ("..", ".") or (os.sep == "\\" and ":" in norm.split("/")[0]):
        raise PathError(f"{rel!r}: path escapes the archive root")
    return norm


def _is_s3(url: str) -> bool:
    return url.startswith(("s3://", "s3a://"))


@dataclass
class Location:
    """A root folder on a filesystem. `url` is a local path or 's3://bucket/prefix'."""

    url: str
    storage_options: dict = field(default_factory=dict)
    staging: str | None = None  # a local folder for commits' temporary files (the archive's state root's)

    def __post_init__(self):
        if _is_s3(self.url):
            opts = dict(self.storage_options)
            if os.environ.get("FACEVEIL_S3_ENDPOINT") and "endpoint_url" not in opts:
                opts["endpoint_url"] = os.environ["FACEVEIL_S3_ENDPOINT"]
            self.fs = fsspec.filesystem("s3", **opts)
            self.root = self.url.split("://", 1)[1].rstrip("/")
        else:
            self.fs = fsspec.filesystem("file")
            self.root = str(Path(self.url).expanduser().resolve())
        self.is_local = not _is_s3(self.url)

    def path(self, rel: str) -> str:
        rel = safe_relpath(rel)
        return os.path.join(self.root, *rel.split("/")) if self.is_local else f"{self.root}/{rel}"

    def display(self, rel: str) -> str:
        """How a user should see this file named in messages."""
        return (self.url.rstrip("/") + "/" + rel) if not self.is_local else self.path(rel)

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def info(self, rel: str) -> dict:
        return self.fs.info(self.path(rel))

    def fingerprint(self, rel: str) -> str:
        """Cheap change detector. Local: size, modification and change time in ns (the change time
        moves on every write and cannot be set back, so content replaced under an old mtime shows);
        S3: size and ETag (a content hash for single-part uploads)."""
        if self.is_local:
            st = os.stat(self.path(rel))
            return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        i = self.info(rel)
        stamp = i.get("ETag") or i.get("mtime") or i.get("LastModified") or i.get("created")
        return f"{i.get('size')}:{str(stamp).strip(chr(34))}"

    def list_files(self, under: str | None = None, links: list[str] | None = None) -> list[str]:
        """Relative paths of every regular file below the root (or its folder `under`), sorted.
        Symbolic links are not followed (one could lead outside the source); their paths go to
        `links` when given."""
        out = []
        start = self.path(under) if under else self.root
        if self.is_local:
            for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
                linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                dirnames[:] = sorted(d for d in dirnames if d not in linked)
                for name in [*filenames, *linked]:
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                    if os.path.islink(full):
                        if links is not None:
                            links.append(rel)
                        continue
                    if os.path.isfile(full):
                        out.append(rel)
        elif self.fs.exists(start):
            for full in self.fs.find(start):
                out.append(posixpath.relpath(full, self.root))
        return sorted(out)

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    @contextlib.contextmanager
    def local_file(self, rel: str, scratch: str) -> Iterator[str]:
        """A local path holding the file for the duration of the block: the file itself when local,
        else a private download into `scratch`, removed when the block ends (whatever happened)."""
        if self.is_local:
            yield self.path(rel)
            return
        dst = os.path.join(scratch, f"{uuid.uuid4().hex}{posixpath.splitext(rel)[1]}")
        try:
            self.fs.get_file(self.path(rel), dst)
            yield dst
        finally:
            if os.path.exists(dst):
                os.unlink(dst)

    def commit_file(self, local_path: str, rel: str) -> None:
        """Moves a finished local file to rel so that it appears whole or not at all: locally it is
        moved (copied, from another filesystem) to a temporary name in `staging` (out of the public
        tree), then renamed into place atomically; on S3 an object is visible only once complete.
        The local file is consumed."""
        target = self.path(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = self._staging_name(target)
            try:
                shutil.move(local_path, tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.put_file(local_path, target)
            os.unlink(local_path)

    def _staging_name(self, target: str) -> str:
        """A new temporary name for `target` on its filesystem: in `staging` (so nothing half written
        or temporary ever shows in the public tree), or, where that folder is on another filesystem
        (a rename cannot cross filesystems) or none is set, a hidden name beside the target."""
        if self.staging:
            os.makedirs(self.staging, mode=0o700, exist_ok=True)
            if os.stat(self.staging).st_dev == os.stat(os.path.dirname(target)).st_dev:
                return os.path.join(self.staging, f"{uuid.uuid4().hex}.tmp")
        return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")

    def write_bytes(self, rel: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            self.commit_file(f.name, rel)
        finally:
            if os.path.exists(f.name):
                os.unlink(f.name)

    def create_bytes(self, rel: str, data: bytes) -> bool:
        """Writes `rel` whole only if it does not exist yet; False when it does (someone else wrote it).
        Locally a hard link of a complete temporary file (or an exclusive create); on S3 a conditional
        PUT (If-None-Match: *), which AWS S3 and MinIO honour."""
        if not self.is_local:
            try:
                self.fs.pipe_file(self.path(rel), data, mode="create")
            except FileExistsError:
                return False
            return True
        target = self.path(rel)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, target)  # atomic, and fails if target exists
            except FileExistsError:
                return False
            except OSError:  # a filesystem without hard links: exclusive create, then write
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            return True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm(self.path(rel))

    def ensure_root(self) -> None:
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        elif not self.fs.exists(self.root.split("/", 1)[0]):
            raise FileNotFoundError(f"{self.url}: bucket does not exist")
