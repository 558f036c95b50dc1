"""``store``: (url, engine) of a fresh migrated store, on SQLite and on PostgreSQL
(the shared ``db_url`` fixture), so the alert engine's locking and SQL run on both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from storage.db import make_engine


@pytest.fixture
def store(db_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(db_url)
    yield db_url, engine
    engine.dispose()
