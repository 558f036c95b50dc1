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
from storage.db import make_engine, upgrade
from storage.prices import load_prices
from tests.alerts.seeding import SCENARIO_END, market_scenario, price_csv, seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    """(url, engine) of a store with three days of five tickers, TSLA's alert open, prices
    for TSLA; FINSENT_DATABASE_URL points the dashboard at it."""
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine, market_scenario())
    (tmp_path / "TSLA.csv").write_text(price_csv("TSLA"))
    load_prices(engine, tmp_path / "TSLA.csv")
    install_default_rules(engine)
    evaluate_rules(engine, now=SCENARIO_END - timedelta(minutes=30))
    evaluate_rules(engine, now=SCENARIO_END)
    monkeypatch.setenv("FINSENT_DATABASE_URL", url)
    monkeypatch.delenv("FINSENT_DASHBOARD_PASSWORD", raising=False)
    yield url, engine
    engine.dispose()


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    engine = make_engine(url)
    monkeypatch.setenv("FINSENT_DATABASE_URL", url)
    monkeypatch.delenv("FINSENT_DASHBOARD_PASSWORD", raising=False)
    yield url, engine
    engine.dispose()
