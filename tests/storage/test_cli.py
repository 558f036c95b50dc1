"""`finsent db upgrade|current` and `finsent sql`: output formats, settings and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from finsent.cli import app
from storage.db import head_revision
from storage.writes import save_batch, upsert_tickers
from tests.storage.factories import item

runner = CliRunner()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env, input=stdin)


@pytest.fixture
def filled(db_url: str, db_engine: Engine) -> str:
    upsert_tickers(
        db_engine,
        [
            {"symbol": "AAPL", "name": "Apple Inc.", "aliases": "Apple", "sector": "IT"},
            {"symbol": "MSFT", "name": "Microsoft, Corp.", "aliases": None, "sector": "IT"},
            {"symbol": "TSLA", "name": 'Tesla "Motors"', "aliases": None, "sector": None},
        ],
    )
    save_batch(db_engine, [item("d1"), item("d2", label="negative")])
    return db_url


def test_db_upgrade_and_current_on_a_new_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    before = invoke("db", "current", "--database-url", url)
    assert before.exit_code == 0, before.output
    assert "empty (run `finsent db upgrade`)" in before.stdout
    up = invoke("db", "upgrade", "--database-url", url)
    assert up.exit_code == 0, up.output
    assert f"at revision {head_revision()} (head)" in up.stdout
    loaded = int(up.stdout.split(", ")[-1].split()[0])
    assert loaded >= 300  # the shipped reference table: a few hundred large caps
    after = invoke("db", "current", "--database-url", url)
    assert f"{head_revision()} (head)" in after.stdout
    count = invoke("sql", "SELECT count(*) FROM tickers", "-f", "json", "--database-url", url)
    assert json.loads(count.stdout)["rows"] == [[loaded]]


def test_db_upgrade_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = invoke("db", "upgrade", "--no-tickers", env={**CLEAN_ENV, "FINSENT_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()
    assert "tickers loaded" not in result.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgres_is_idempotent_and_hides_the_password(pg_url: str) -> None:
    # Trust authentication ignores the password, so any one will do to see it hidden.
    with_password = make_url(pg_url).set(password="s3cret-pw").render_as_string(
        hide_password=False
    )
    result = invoke("db", "upgrade", "--no-tickers", "--database-url", with_password)
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision()} (head)" in result.stdout
    assert "s3cret-pw" not in result.output and "***" in result.stdout


def test_sql_table_output(filled: str) -> None:
    result = invoke(
        "sql", "SELECT symbol, sector FROM tickers ORDER BY symbol", "--database-url", filled
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("symbol" in line and "sector" in line for line in lines[:3])
    assert any("AAPL" in line and "IT" in line for line in lines)
    assert any("TSLA" in line and "NULL" in line for line in lines)
    assert "3 rows" in result.stderr


def test_sql_csv_output_round_trips(filled: str) -> None:
    result = invoke(
        "sql",
        "SELECT symbol, name, sector FROM tickers ORDER BY symbol",
        "--format",
        "csv",
        "--database-url",
        filled,
    )
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["symbol", "name", "sector"],
        ["AAPL", "Apple Inc.", "IT"],
        ["MSFT", "Microsoft, Corp.", "IT"],
        ["TSLA", 'Tesla "Motors"', ""],
    ]


def test_sql_json_output_with_times_and_numbers(filled: str) -> None:
    sql = (
        "SELECT d.external_id, d.event_at, s.score, s.label FROM documents d "
        "JOIN scores s ON s.document_id = d.id ORDER BY d.external_id"
    )
    result = invoke("sql", sql, "-f", "json", "--database-url", filled)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["columns"] == ["external_id", "event_at", "score", "label"]
    assert payload["truncated"] is False
    assert [r[0] for r in payload["rows"]] == ["d1", "d2"]
    assert payload["rows"][0][1].startswith("2024-03-01")
    assert payload["rows"][1][2] == pytest.approx(-0.75)


def test_sql_row_cap_from_flag_and_environment(filled: str) -> None:
    flag = invoke(
        "sql",
        "SELECT symbol FROM tickers",
        "-f",
        "csv",
        "--max-rows",
        "2",
        "--database-url",
        filled,
    )
    assert flag.exit_code == 0, flag.output
    assert len(flag.stdout.splitlines()) == 3  # header + 2
    assert "stopped at 2 rows" in flag.stderr and "FINSENT_SQL_MAX_ROWS" in flag.stderr
    env = {**CLEAN_ENV, "FINSENT_DATABASE_URL": filled, "FINSENT_SQL_MAX_ROWS": "1"}
    from_env = invoke("sql", "SELECT symbol FROM tickers", "-f", "json", env=env)
    assert json.loads(from_env.stdout)["truncated"] is True
    assert len(json.loads(from_env.stdout)["rows"]) == 1


def test_sql_reads_the_query_from_stdin(filled: str) -> None:
    result = invoke(
        "sql",
        "-",
        "-f",
        "csv",
        "--database-url",
        filled,
        stdin="SELECT count(*) AS n FROM tickers;\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "3"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM tickers", "refused: DELETE statements are not allowed"),
        ("SELECT 1; DROP TABLE tickers", "refused: only one statement"),
        ("ATTACH DATABASE 'x.db' AS x", "refused: ATTACH statements"),
        ("SELECT * FROM nowhere", "query failed"),
    ],
)
def test_sql_errors_are_one_line_and_exit_2(filled: str, sql: str, message: str) -> None:
    result = invoke("sql", sql, "--database-url", filled)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"finsent: error: {message}")


def test_sql_timeout_names_the_setting(filled: str) -> None:
    bomb = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    result = invoke("sql", bomb, "--timeout", "0.3", "--database-url", filled)
    assert result.exit_code == 2
    assert "time limit of 0.3 s" in result.stderr and "FINSENT_SQL_TIMEOUT_S" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["sql", "SELECT 1", "--format", "xml"],
        ["sql", "SELECT 1", "--max-rows", "0"],
        ["sql", "SELECT 1", "--timeout", "0"],
        ["sql"],
        ["db", "upgrade", "--bogus"],
    ],
)
def test_wrong_arguments_exit_2(args: list[str], tmp_path: Path) -> None:
    result = invoke(*args, env={**CLEAN_ENV, "FINSENT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.exit_code == 2


def test_a_bad_setting_in_the_environment_is_one_line(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "FINSENT_SQL_TIMEOUT_S": "soon"}
    result = invoke("sql", "SELECT 1", "--database-url", f"sqlite:///{tmp_path}/x.db", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "finsent: error: invalid sql_timeout_s (FINSENT_SQL_TIMEOUT_S):"
    )


def test_the_installed_command_refuses_with_exit_2(sqlite_url: str) -> None:
    """The real entry point, as a user runs it: one line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "finsent.cli", "sql", "DROP TABLE documents"],
        env={**CLEAN_ENV, "FINSENT_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "finsent: error: refused: DROP statements are not allowed: only read-only queries "
        "(SELECT, WITH, EXPLAIN, VALUES)"
    ]
