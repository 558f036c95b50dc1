"""The ad-hoc SQL runner: one read-only query, under a time limit and a row cap, on both stores.

Every attack is run against a real database; the assertions check both the refusal and that
the store is unchanged afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from storage.db import make_engine, upgrade
from storage.exceptions import SqlFailed, SqlRefused, SqlTimeout, StorageError
from storage.models import Ticker
from storage.sqlrunner import run_readonly, validate_sql_select
from storage.writes import save_batch, upsert_tickers
from tests.fixtures.db import fresh_pg_database
from tests.storage.factories import item

TICKERS = [{"symbol": f"T{i:03d}", "name": f"Company {i}"} for i in range(50)]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One filled store per module and database: nothing here may change it (and every
    refusal test checks that it did not)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlrunner') / 'store.db'}"
            upgrade(url)
        else:
            admin = request.getfixturevalue("pg_admin")
            template = request.getfixturevalue("pg_template")
            url = stack.enter_context(fresh_pg_database(admin, template))
        engine = make_engine(url)
        upsert_tickers(engine, TICKERS)
        save_batch(engine, [item(f"d{i}") for i in range(3)])
        engine.dispose()
        yield url


def run(url: str, sql: str, *, timeout_s: float = 5.0, max_rows: int = 100, **kw: str):  # type: ignore[no-untyped-def]
    return run_readonly(url, sql, timeout_s=timeout_s, max_rows=max_rows, **kw)


def ticker_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Ticker)).scalar_one())
    finally:
        engine.dispose()


# --- what may run -------------------------------------------------------------------------


def test_a_select_returns_columns_and_rows(store: str) -> None:
    result = run(
        store, "SELECT symbol, name FROM tickers WHERE symbol IN ('T001', 'T002') ORDER BY symbol;"
    )
    assert result.columns == ["symbol", "name"]
    assert result.rows == [("T001", "Company 1"), ("T002", "Company 2")]
    assert result.truncated is False
    assert result.elapsed_s >= 0


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (SELECT count(*) AS n FROM documents) SELECT n FROM x",
        "VALUES (1), (2)",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT n, mean_score FROM ticker_sentiment_hour",
        "SELECT 'a%b' LIKE 'a%', '?' AS q, ':x' AS colon",
        "-- a comment first\nSELECT 1 /* and one inside */",
    ],
)
def test_read_only_queries_run(store: str, sql: str) -> None:
    assert run(store, sql).rows


def test_explain_runs(store: str) -> None:
    sql = (
        "EXPLAIN QUERY PLAN SELECT * FROM documents"
        if store.startswith("sqlite")
        else ("EXPLAIN SELECT * FROM documents")
    )
    assert run(store, sql).rows


def test_sqlite_schema_functions_are_readable(sqlite_url: str) -> None:
    result = run(sqlite_url, "SELECT name FROM pragma_table_info('mentions') ORDER BY cid")
    assert [r[0] for r in result.rows] == ["document_id", "ticker", "event_at", "how"]


def test_the_row_cap_truncates(store: str) -> None:
    result = run(store, "SELECT symbol FROM tickers ORDER BY symbol", max_rows=10)
    assert len(result.rows) == 10
    assert result.truncated is True
    assert result.rows[0] == ("T000",)
    exact = run(store, "SELECT symbol FROM tickers", max_rows=50)
    assert (len(exact.rows), exact.truncated) == (50, False)


# --- what is refused ----------------------------------------------------------------------

ATTACKS = [
    ("INSERT INTO tickers (symbol, name) VALUES ('EVIL', 'x')", "INSERT statements"),
    ("UPDATE tickers SET name = 'x'", "UPDATE statements"),
    ("DELETE FROM tickers", "DELETE statements"),
    ("DROP TABLE tickers", "DROP statements"),
    ("CREATE TABLE evil (x int)", "CREATE statements"),
    ("ALTER TABLE tickers ADD COLUMN evil int", "ALTER statements"),
    ("ATTACH DATABASE '/tmp/evil.db' AS evil", "ATTACH statements"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA statements"),
    ("PRAGMA query_only = OFF", "PRAGMA statements"),
    ("SELECT 1; DELETE FROM tickers", "only one statement"),
    ("SELECT 1; SELECT 2", "only one statement"),
    ("WITH gone AS (DELETE FROM tickers RETURNING *) SELECT * FROM gone", "DELETE is not allowed"),
    ("WITH x AS (SELECT 1) INSERT INTO tickers SELECT 'E', 'e', NULL, NULL", "INSERT is not"),
    ("SELECT * INTO evil FROM tickers", "INTO is not allowed"),
    ("EXPLAIN ANALYZE DELETE FROM tickers", "EXPLAIN is allowed only"),
    ("BEGIN", "BEGIN statements"),
    ("SET statement_timeout = 0", "SET statements"),
    ("VACUUM", "VACUUM statements"),
    ("COPY tickers TO '/tmp/x'", "COPY statements"),
    ("SELECT load_extension('evil')", "load_extension"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend"),
    ("SELECT query_to_xml('DELETE FROM tickers', true, true, '')", "query_to_xml"),
    ("", "empty statement"),
    ("  ;  -- nothing", "empty statement"),
]


@pytest.mark.parametrize(("sql", "why"), ATTACKS)
def test_writes_ddl_attach_pragma_and_multiple_statements_are_refused(
    store: str, sql: str, why: str
) -> None:
    with pytest.raises(SqlRefused, match=why) as info:
        run(store, sql)
    assert str(info.value).startswith("refused: ")
    assert ticker_count(store) == len(TICKERS)


def test_refusal_does_not_depend_on_case_comments_or_quotes() -> None:
    for sql in (
        "sElEcT 1; dElEtE fRoM tickers",
        "/* hi */ delete from tickers",
        "select 1 -- comment\n; drop table tickers",
        "select 'it''s' ; drop table tickers",
    ):
        with pytest.raises(SqlRefused):
            validate_sql_select(sql)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_keywords_inside_strings_and_quoted_names_are_data(dialect: str) -> None:
    assert validate_sql_select("SELECT 'DELETE FROM x; DROP TABLE y' AS s;", dialect) == (
        "SELECT 'DELETE FROM x; DROP TABLE y' AS s"
    )
    assert validate_sql_select('SELECT 1 AS "delete"', dialect) == 'SELECT 1 AS "delete"'


def test_postgres_quoting_forms_cannot_hide_a_second_statement() -> None:
    pg = "postgresql"
    assert validate_sql_select("SELECT $$ ; DROP TABLE x $$", pg)
    assert validate_sql_select("SELECT $t$ ; DROP TABLE x $t$", pg)
    assert validate_sql_select("SELECT E'\\' ; DROP TABLE x'", pg)
    assert validate_sql_select("SELECT 1 /* /* nested */ ; DROP TABLE x */", pg)
    with pytest.raises(SqlRefused, match="only one statement"):
        validate_sql_select("SELECT E'\\'' ; DROP TABLE x", pg)
    with pytest.raises(SqlRefused, match="Unicode-escape"):
        validate_sql_select('SELECT U&"\\0064rop"', pg)
    with pytest.raises(SqlRefused, match="unterminated"):
        validate_sql_select("SELECT $$ never closed", pg)


@given(st.text(max_size=40))
def test_any_string_literal_is_accepted_as_data(content: str) -> None:
    literal = "'" + content.replace("'", "''") + "'"
    sql = f"SELECT {literal} AS s"
    assert validate_sql_select(sql) == sql


@pytest.mark.postgres
def test_postgres_refuses_what_the_validator_lets_through(pg_url: str) -> None:
    """Row locks are not writes to the validator; the read-only transaction refuses them."""
    with pytest.raises(SqlRefused, match="the database refused it: .*read-only transaction"):
        run(pg_url, "SELECT * FROM tickers FOR SHARE")


# --- time limits ----------------------------------------------------------------------------

BOMB = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_a_recursive_cte_bomb_times_out(store: str) -> None:
    with pytest.raises(SqlTimeout, match="FINSENT_SQL_TIMEOUT_S"):
        run(store, BOMB, timeout_s=0.5)
    # The store is still usable right after.
    assert run(store, "SELECT count(*) FROM tickers").rows == [(len(TICKERS),)]


def test_a_cartesian_bomb_times_out(store: str) -> None:
    sql = "SELECT count(*) FROM tickers a, tickers b, tickers c, tickers d, tickers e"
    with pytest.raises(SqlTimeout, match="time limit of 0.5 s"):
        run(store, sql, timeout_s=0.5)


@pytest.mark.postgres
def test_pg_sleep_times_out(pg_url: str) -> None:
    with pytest.raises(SqlTimeout, match="FINSENT_SQL_TIMEOUT_S"):
        run(pg_url, "SELECT pg_sleep(30)", timeout_s=0.5)


# --- read-only connections ------------------------------------------------------------------


def test_the_readonly_engine_cannot_write(store: str) -> None:
    engine = make_engine(store, readonly=True)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tickers")).scalar_one() == len(TICKERS)
        with (
            engine.connect() as conn,
            pytest.raises(Exception, match="readonly|read-only|read only"),
        ):
            conn.execute(text("DELETE FROM tickers"))
            conn.commit()
    finally:
        engine.dispose()
    assert ticker_count(store) == len(TICKERS)


def test_sqlite_readonly_engine_cannot_switch_itself_back(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, readonly=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            with pytest.raises(Exception, match="readonly"):
                conn.exec_driver_sql("DELETE FROM tickers")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_runs_in_a_read_only_transaction(pg_url: str) -> None:
    result = run(pg_url, "SELECT current_setting('transaction_read_only')")
    assert result.rows == [("on",)]


@pytest.mark.postgres
def test_postgres_readonly_role_url_is_used(pg_admin, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.engine import make_url

    login = f"finsent_t_sql_{make_url(pg_url).database[-8:]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE finsent_readonly"))
    try:
        reader = make_url(pg_url).set(username=login).render_as_string(hide_password=False)
        result = run(pg_url, "SELECT current_user, count(*) FROM tickers", readonly_url=reader)
        assert result.rows == [(login, 0)]
    finally:
        with pg_admin.connect() as conn:
            database = make_url(pg_url).database
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE {login}"))


# --- errors -------------------------------------------------------------------------------------


def test_a_bad_query_is_a_clear_failure(store: str) -> None:
    with pytest.raises(SqlFailed, match="query failed: .*no_such_table"):
        run(store, "SELECT * FROM no_such_table")


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StorageError, match="does not exist"):
        run(f"sqlite:///{path}", "SELECT 1")
    assert not path.exists()


def test_limits_must_be_positive(sqlite_url: str) -> None:
    with pytest.raises(StorageError, match="FINSENT_SQL_TIMEOUT_S"):
        run(sqlite_url, "SELECT 1", timeout_s=0)
    with pytest.raises(StorageError, match="FINSENT_SQL_MAX_ROWS"):
        run(sqlite_url, "SELECT 1", max_rows=0)
