"""Where the shipped default model lives.

``models/`` at the repository root is its source of truth. A built wheel carries a copy as
package data, ``milterfilters/models`` (mapped in setup.py); a checkout or an editable install
reads the root folder itself.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
_INSTALLED = _PACKAGE / "models"

#: the shipped model: inside the installed package, else ``models/`` of the checkout
DEFAULT_MODEL_DIR = _INSTALLED if _INSTALLED.is_dir() else _PACKAGE.parent / "models"
