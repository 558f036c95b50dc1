"""Root fixtures: offline model hub, the shared data folder, and the room fixture plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.db", "tests.fixtures.model"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    return Path(os.environ.get("FINSENT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; skipped when absent, except under CI=true where absence fails."""
    path = _data_dir()
    if not path.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared data folder {path} is missing (required under CI=true)")
        pytest.skip(f"shared data folder {path} is missing; set FINSENT_DATA_DIR to run this test")
    return path
