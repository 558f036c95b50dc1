"""Locations inside the checkout, so defaults work from any working directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "finsent-minilm"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
