"""Test data from a package's source distribution, downloaded once and cached.

The cache is ``~/.cache/milterfilters-tests`` (``MILTERFILTERS_TEST_CACHE`` overrides); the
files are never committed to this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("MILTERFILTERS_TEST_CACHE", Path.home() / ".cache" / "milterfilters-tests"))


def unpacked_sdist(project: str, version: str) -> Path:
    """The unpacked sdist of ``project==version`` (fetched with pip on first use)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / f"{project}-{version}"
    if target.is_dir():
        return target
    archive = CACHE / f"{project}-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"{project}=={version}", "-d", str(CACHE)],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / target.name
        if not target.exists():
            unpacked.rename(target)
    return target
