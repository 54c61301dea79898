import shutil
from pathlib import Path

import pytest

from faceveil.sample import make_sample_archive


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory) -> Path:
    """The built-in sample (short), plus one bad file of each kind."""
    root = tmp_path_factory.mktemp("archive")
    make_sample_archive(root, seconds=2.0, fps=25, size=(480, 270))
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n" * 20)
    data = (root / "cameras/lobby/clip_001.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (bad / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage" * 10)
    (bad / "README.txt").write_text("notes, not media")
    return root


@pytest.fixture
def archive_copy(sample_archive, tmp_path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(sample_archive, dst)
    return dst
