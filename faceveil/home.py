"""faceveil's own folder on this machine: $FACEVEIL_HOME, default ~/.faceveil (models derived from the
shipped weights, caches, the MLflow store of s3:// archives, the access log's anchors)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("FACEVEIL_HOME") or Path.home() / ".faceveil")
