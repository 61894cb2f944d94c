"""Where the tests find the project and the shared material beside it."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MILTERFILTERS_SHARED", PROJECT_ROOT.parent / "shared"))
CORPUS_ARCHIVE = SHARED / "corpora" / "spamassassin.tar.xz"
