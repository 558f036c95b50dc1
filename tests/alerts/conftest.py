"""A migrated SQLite store per test (real migrations, real writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage.db import make_engine, upgrade


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
