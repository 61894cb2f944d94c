"""Where the shipped default model lives: ``models/`` at the repository root, beside the package."""

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent.parent / "models"
