"""`finsent rules`, `finsent alerts --once` and `finsent prices load` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage import queries
from tests.alerts.seeding import scored, seed
from tests.alerts.test_engine import minutes


def finsent(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FINSENT_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "finsent.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("finsent: error:")]


def test_rules_add_list_disable_enable(store: tuple[str, Engine]) -> None:
    url, engine = store
    proc = finsent(url, "rules", "add", "aapl-drop", "--kind", "mean_below", "--target", "aapl",
                   "--threshold", "-0.4", "--resolve", "-0.2", "--for", "5m", "--cooldown", "1h")
    assert proc.returncode == 0, proc.stderr
    assert "AAPL: mean < -0.4 over 1h" in proc.stdout
    out = finsent(url, "rules", "list", "--json").stdout
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(r["name"], r["target"], r["for_s"], r["cooldown_s"]) for r in listed] == [
        ("aapl-drop", "AAPL", 300, 3600)
    ]
    assert finsent(url, "rules", "disable", "aapl-drop").returncode == 0
    assert queries.get_rule(engine, "aapl-drop").enabled is False
    assert finsent(url, "rules", "enable", str(listed[0]["id"])).returncode == 0
    assert queries.get_rule(engine, "aapl-drop").enabled is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kind", "mean_below", "--threshold", "-0.3", "--resolve", "-0.5"], ">= threshold"),
        (["--kind", "sideways", "--threshold", "1"], "kind"),
        (["--kind", "mean_below", "--threshold", "0", "--window", "soon"], "bad duration"),
        (["--kind", "mean_below", "--threshold", "0", "--scope", "market", "--target", "X"],
         "no target"),
    ],
)
def test_rules_add_refuses_bad_rules_with_one_line(
    store: tuple[str, Engine], args: list[str], needle: str
) -> None:
    url, engine = store
    proc = finsent(url, "rules", "add", "bad", *args)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert needle in line
    assert "Traceback" not in proc.stderr
    assert queries.count_rules(engine) == 0


def test_unknown_rule_and_duplicate_name(store: tuple[str, Engine]) -> None:
    url, _ = store
    proc = finsent(url, "rules", "disable", "nope")
    assert proc.returncode == 2 and "no rule named 'nope'" in error_lines(proc)[0]
    add = ["rules", "add", "dup", "--kind", "volume_z", "--threshold", "3"]
    assert finsent(url, *add).returncode == 0
    proc = finsent(url, *add)
    assert proc.returncode == 2 and "already exists" in error_lines(proc)[0]


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    proc = finsent(f"sqlite:///{tmp_path / 'absent' / 'x.db'}", "alerts", "--once")
    assert proc.returncode == 2
    assert len(error_lines(proc)) == 1 and "Traceback" not in proc.stderr


def test_alerts_once_installs_defaults_and_reports_openings(store: tuple[str, Engine]) -> None:
    url, engine = store
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(12)])
    proc = finsent(url, "alerts", "--once")
    assert proc.returncode == 0, proc.stderr
    assert "installed the default alert rules" in proc.stdout
    # the default ticker rule waits 5 minutes ('for'); data time is minute 11, so the
    # breach has been pending since this evaluation only: nothing opened yet
    assert "opened" not in proc.stdout
    seed(engine, [scored(f"m{i}", minutes(12 + i), -0.8) for i in range(6)])
    proc = finsent(url, "alerts", "--once")
    assert "opened alert" in proc.stdout and "ticker-sentiment-drop on AAPL" in proc.stdout


def test_prices_load_upserts_and_skips_nulls(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    folder = tmp_path / "price_raw"
    folder.mkdir()
    (folder / "AAPL.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2015-06-01,130.0,131.0,129.5,130.5,120.1,1000\n"
        "2015-06-02,null,null,null,null,null,null\n"
        "2015-06-03,131.0,132.0,130.0,131.5,121.0,1200\n"
    )
    proc = finsent(url, "prices", "load", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "loaded 2 daily prices for 1 ticker(s)" in proc.stdout
    assert "1 empty row(s) skipped" in proc.stdout
    rows = queries.price_series(engine, "AAPL", date(2015, 6, 1), date(2015, 6, 30))
    assert [(r["day"], r["close"]) for r in rows] == [
        (date(2015, 6, 1), 130.5),
        (date(2015, 6, 3), 131.5),
    ]
    (folder / "AAPL.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n2015-06-01,1,1,1,99.0,1,1\n"
    )
    assert finsent(url, "prices", "load", str(folder / "AAPL.csv")).returncode == 0
    rows = queries.price_series(engine, "AAPL", date(2015, 6, 1), date(2015, 6, 1))
    assert rows[0]["close"] == 99.0  # re-loading updates in place


def test_prices_load_refuses_a_file_without_ohlcv(
    store: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _ = store
    bad = tmp_path / "MSFT.csv"
    bad.write_text("day,price\n2015-01-01,3\n")
    proc = finsent(url, "prices", "load", str(bad))
    assert proc.returncode == 2
    assert "missing column(s) Date, Open" in error_lines(proc)[0]


def test_prices_load_stocknet(store: tuple[str, Engine], shared_data: Path) -> None:
    url, engine = store
    proc = finsent(url, "prices", "load", str(shared_data / "stocknet" / "price_raw"))
    assert proc.returncode == 0, proc.stderr
    assert "for 88 ticker(s)" in proc.stdout
    rows = queries.price_series(engine, "AAPL", date(2015, 1, 1), date(2015, 1, 10))
    assert len(rows) == 6 and all(r["close"] > 0 for r in rows)
