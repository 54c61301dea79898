import os
import shutil
import socket
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 for the module's tests; FACEVEIL_S3_ENDPOINT and test credentials
    set while it runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "FACEVEIL_S3_ENDPOINT": url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
