"""A seeded store for the dashboard: documents through save_batch, prices through the price
loader, alerts through the alert engine (the same paths production uses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from alerts.defaults import install_default_rules
from alerts.engine import evaluate_rules
from storage.db import make_engine
from storage.prices import load_prices
from tests.alerts.seeding import SCENARIO_END, market_scenario, price_csv, seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def seeded(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Engine]]:
    """(url, engine) of a SQLite store with three days of five tickers, TSLA's alerts open,
    prices for TSLA; FINSENT_DATABASE_URL points the dashboard at it."""
    engine = make_engine(sqlite_url)
    seed_scenario(engine, tmp_path)
    monkeypatch.setenv("FINSENT_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("FINSENT_DASHBOARD_PASSWORD", raising=False)
    yield sqlite_url, engine
    engine.dispose()


def seed_scenario(engine: Engine, tmp_path: Path) -> None:
    seed(engine, market_scenario())
    (tmp_path / "TSLA.csv").write_text(price_csv("TSLA"))
    load_prices(engine, tmp_path / "TSLA.csv")
    install_default_rules(engine)
    evaluate_rules(engine, now=SCENARIO_END - timedelta(minutes=30))
    evaluate_rules(engine, now=SCENARIO_END)


@pytest.fixture
def empty_store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(sqlite_url)
    monkeypatch.setenv("FINSENT_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("FINSENT_DASHBOARD_PASSWORD", raising=False)
    yield sqlite_url, engine
    engine.dispose()
