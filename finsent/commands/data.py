"""`finsent db upgrade|current` and `finsent sql`: the store's schema and plain-SQL access."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer

from finsent.config import Settings, load_settings
from finsent.exceptions import FinsentError

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Store URL (FINSENT_DATABASE_URL).")
]


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    """Adds `db` (a command group) and `sql` to the finsent app."""
    db_app = typer.Typer(
        name="db", help="The store's schema: migrations and revision.", no_args_is_help=True
    )
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")
    app.command("sql")(sql)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"finsent: error: {message}", err=True)
    return typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Storage errors become one line on stderr and exit code 2, also under CliRunner."""
    from storage.exceptions import StorageError

    try:
        yield
    except StorageError as e:
        raise _fail(str(e)) from e


def _settings(**overrides: object) -> Settings:
    """Settings with CLI overrides; a bad value is one line and exit 2 under CliRunner too."""
    try:
        return load_settings(**overrides)
    except FinsentError as e:
        raise _fail(str(e)) from e


def db_upgrade(
    database_url: DatabaseUrl = None,
    tickers: Annotated[
        bool,
        typer.Option(
            "--tickers/--no-tickers", help="Also load the shipped ticker reference table."
        ),
    ] = True,
) -> None:
    """Create or migrate the store to the newest schema: tables, views, read-only role."""
    from storage.db import current_revision, safe_url, upgrade

    settings = _settings(database_url=database_url)
    url = settings.database_url
    with _user_errors():
        upgrade(url)
        revision = current_revision(url)
        loaded = 0
        if tickers:
            from scorer.tickers import reference_rows
            from storage.db import make_engine
            from storage.writes import upsert_tickers

            engine = make_engine(url)
            try:
                loaded = upsert_tickers(engine, reference_rows())
            finally:
                engine.dispose()
    note = f", {loaded} tickers loaded" if tickers else ""
    typer.echo(f"{safe_url(url)}: at revision {revision} (head){note}")


def db_current(database_url: DatabaseUrl = None) -> None:
    """Print the store's migration revision and whether it is the newest."""
    from storage.db import current_revision, head_revision, safe_url

    settings = _settings(database_url=database_url)
    with _user_errors():
        revision = current_revision(settings.database_url)
        head = head_revision()
    if revision is None:
        state = "empty (run `finsent db upgrade`)"
    elif revision == head:
        state = f"{revision} (head)"
    else:
        state = f"{revision} (behind head {head}; run `finsent db upgrade`)"
    typer.echo(f"{safe_url(settings.database_url)}: {state}")


def sql(
    query: Annotated[
        str, typer.Argument(metavar="SQL", help="One read-only query; '-' reads it from stdin.")
    ],
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output: table, csv or json.")
    ] = OutputFormat.table,
    max_rows: Annotated[
        int | None,
        typer.Option("--max-rows", min=1, help="Row cap (FINSENT_SQL_MAX_ROWS, default 1000)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.001, help="Time limit in seconds (FINSENT_SQL_TIMEOUT_S, default 5)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run one read-only SQL query (SELECT, WITH, EXPLAIN, VALUES) on the store.

    Writes, DDL, ATTACH, PRAGMA and multiple statements are refused (exit code 2); the query
    runs on a read-only connection under a time limit, and at most --max-rows rows come back.
    """
    from storage.sqlrunner import run_readonly

    settings = _settings(database_url=database_url, sql_max_rows=max_rows, sql_timeout_s=timeout)
    text = sys.stdin.read() if query == "-" else query
    with _user_errors():
        result = run_readonly(
            settings.database_url,
            text,
            timeout_s=settings.sql_timeout_s,
            max_rows=settings.sql_max_rows,
            readonly_url=settings.database_readonly_url,
        )
    if output is OutputFormat.json:
        payload = {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}
        typer.echo(json.dumps(payload, default=_json_value, ensure_ascii=False))
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_plain(v) for v in row] for row in result.rows)
    else:
        _print_table(result.columns, result.rows)
    if result.truncated:
        typer.echo(
            f"(stopped at {len(result.rows)} rows: raise --max-rows or FINSENT_SQL_MAX_ROWS "
            "to see more)",
            err=True,
        )


def _plain(value: Any) -> Any:
    """CSV/table cell: times in ISO form, bytes as hex, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    plain = _plain(value)
    return plain if plain is not value else str(value)


def _print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("[dim]NULL[/]" if v is None else _escape(str(_plain(v))) for v in row))
    Console(soft_wrap=False).print(table)
    typer.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", err=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
