"""Ad-hoc SQL for analysts (``finsent sql``, the dashboard console), safe to expose.

As datasette does it, in layers, so that no single check has to be perfect:

1. ``validate_sql_select`` reads the statement with a small tokenizer that knows strings,
   quoted identifiers and comments: exactly one statement, starting with SELECT, WITH,
   EXPLAIN or VALUES, with no write keyword anywhere (data-modifying CTEs, SELECT INTO) and
   no function that reaches outside the database (files, other sessions, settings).
2. The connection cannot write: SQLite opens the file ``mode=ro`` with ``query_only`` and an
   authorizer that allows reads only; PostgreSQL runs a ``READ ONLY`` transaction, as the
   ``finsent_readonly`` role when ``FINSENT_DATABASE_READONLY_URL`` names one.
3. A time limit interrupts the query (SQLite progress handler, PostgreSQL
   ``statement_timeout``) and a row cap stops fetching; the caller learns both.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from storage.db import describe, is_transient, make_engine, sqlalchemy_url
from storage.exceptions import DatabaseUnavailable, SqlFailed, SqlRefused, SqlTimeout, StorageError

TIMEOUT_SETTING = "FINSENT_SQL_TIMEOUT_S"
MAX_ROWS_SETTING = "FINSENT_SQL_MAX_ROWS"

ALLOWED_FIRST = ("select", "with", "explain", "values")
# Words that make a query write, wherever they appear: data-modifying CTEs, SELECT INTO,
# SQLite's WITH .. INSERT/REPLACE INTO, and statements that could not appear mid-query at all.
WRITE_WORDS = frozenset(
    {
        "insert", "update", "delete", "merge", "into", "drop", "create", "alter", "truncate",
        "grant", "revoke", "attach", "detach", "pragma", "vacuum", "reindex", "copy",
    }
)
# Functions that read files, touch other sessions, change settings or run SQL given as text.
DENIED_FUNCTIONS = frozenset(
    {
        "load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "fsdir", "zipfile",
        "set_config", "pg_reload_conf", "pg_rotate_logfile", "pg_terminate_backend",
        "pg_cancel_backend", "pg_switch_wal", "pg_promote", "pg_notify", "pg_stat_file",
        "pg_import_system_collations", "pg_log_backend_memory_contexts", "pg_backup_start",
        "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "nextval", "setval",
        "txid_current", "pg_current_xact_id", "query_to_xml", "query_to_xmlschema",
        "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    }
)
DENIED_PREFIXES = (
    "lo_",
    "dblink",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_replication_",
    "pg_logical_",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_stat_reset",
)
_EXPLAIN_OPTIONS = frozenset({"query", "plan", "analyze", "analyse", "verbose"})

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_s: float


@dataclass(frozen=True)
class _Token:
    kind: str  # word | ident | string | number | punct
    value: str  # words lower-cased; identifiers unquoted
    start: int


# --- 1. the statement -------------------------------------------------------------------------


def _refuse(why: str) -> SqlRefused:
    return SqlRefused(f"refused: {why}")


def _skip_quoted(sql: str, i: int, close: str, *, backslash: bool = False) -> int:
    """Index after the closing quote of a literal starting at ``i``; doubled quotes escape."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == close:
            if close in "'\"`" and sql.startswith(close * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    raise _refuse("unterminated quote")


def _tokenize(sql: str, dialect: str) -> list[_Token]:
    pg = dialect == "postgresql"
    tokens: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while depth:
                if j >= n:
                    raise _refuse("unterminated /* comment")
                if pg and sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif c == "'":
            prev = tokens[-1] if tokens else None
            e_string = (
                pg
                and prev is not None
                and prev.kind == "word"
                and prev.value == "e"
                and prev.start + 1 == i
            )
            j = _skip_quoted(sql, i, "'", backslash=e_string)
            tokens.append(_Token("string", sql[i + 1 : j - 1], i))
            i = j
        elif c == '"' or (not pg and c == "`"):
            j = _skip_quoted(sql, i, c)
            tokens.append(_Token("ident", sql[i + 1 : j - 1].replace(c * 2, c).lower(), i))
            i = j
        elif c == "[" and not pg:
            j = sql.find("]", i)
            if j < 0:
                raise _refuse("unterminated [identifier]")
            tokens.append(_Token("ident", sql[i + 1 : j].lower(), i))
            i = j + 1
        elif pg and c == "$" and (m := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(m.group(), m.end())
            if end < 0:
                raise _refuse("unterminated $$ string")
            tokens.append(_Token("string", sql[m.end() : end], i))
            i = end + len(m.group())
        elif pg and sql[i : i + 2].lower() == "u&" and sql[i + 2 : i + 3] in ("'", '"'):
            raise _refuse("Unicode-escape literals (U&'...') are not allowed")
        elif m := _WORD.match(sql, i):
            tokens.append(_Token("word", m.group().lower(), i))
            i = m.end()
        elif m := _NUMBER.match(sql, i):
            tokens.append(_Token("number", m.group(), i))
            i = m.end()
        else:
            tokens.append(_Token("punct", c, i))
            i += 1
    return tokens


def _function_denied(name: str) -> bool:
    name = name.lower()
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


def validate_sql_select(sql: str, dialect: str = "sqlite") -> str:
    """The single read-only statement in ``sql`` (trailing ``;`` removed), or ``SqlRefused``
    saying why not. ``dialect`` is ``sqlite`` or ``postgresql`` (their quoting differs)."""
    if not isinstance(sql, str):
        raise _refuse("SQL must be text")
    tokens = _tokenize(sql, dialect)
    statements: list[list[_Token]] = [[]]
    ends: list[int] = []
    for tok in tokens:
        if tok.kind == "punct" and tok.value == ";":
            ends.append(tok.start)
            statements.append([])
        else:
            statements[-1].append(tok)
    nonempty = [s for s in statements if s]
    if not nonempty:
        raise _refuse("empty statement")
    if len(nonempty) > 1:
        raise _refuse(
            f"only one statement at a time is allowed, found {len(nonempty)} separated by ';'"
        )
    stmt = nonempty[0]
    index = statements.index(stmt)
    end = ends[index] if index < len(ends) else len(sql)
    text = sql[stmt[0].start : end].rstrip()

    first = next((t for t in stmt if not (t.kind == "punct" and t.value == "(")), None)
    if first is None or first.kind != "word" or first.value not in ALLOWED_FIRST:
        what = first.value.upper() if first is not None and first.kind == "word" else "this"
        raise _refuse(
            f"{what} statements are not allowed: only read-only queries "
            "(SELECT, WITH, EXPLAIN, VALUES)"
        )
    if first.value == "explain":
        _check_explain(stmt[stmt.index(first) + 1 :])
    for k, tok in enumerate(stmt):
        if tok.kind == "word" and tok.value in WRITE_WORDS:
            raise _refuse(f"{tok.value.upper()} is not allowed: only read-only queries")
        nxt = stmt[k + 1] if k + 1 < len(stmt) else None
        if (
            tok.kind in ("word", "ident")
            and nxt is not None
            and nxt.kind == "punct"
            and nxt.value == "("
            and _function_denied(tok.value)
        ):
            raise _refuse(f"function {tok.value}() is not allowed in ad-hoc SQL")
    return text


def _check_explain(rest: list[_Token]) -> None:
    i = 0
    if rest and rest[0].kind == "punct" and rest[0].value == "(":  # EXPLAIN (options) ...
        depth = 0
        for i, tok in enumerate(rest):  # noqa: B007 - i is used after the loop
            if tok.kind == "punct" and tok.value in "()":
                depth += 1 if tok.value == "(" else -1
                if depth == 0:
                    break
        i += 1
    while i < len(rest) and rest[i].kind == "word" and rest[i].value in _EXPLAIN_OPTIONS:
        i += 1
    target = rest[i] if i < len(rest) else None
    if target is None or not (
        (target.kind == "word" and target.value in ("select", "with", "values"))
        or (target.kind == "punct" and target.value == "(")
    ):
        raise _refuse("EXPLAIN is allowed only in front of a SELECT, WITH or VALUES query")


# --- 2 and 3. running it ------------------------------------------------------------------------

_SQLITE_READ_PRAGMAS = frozenset(
    {
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "collation_list", "function_list", "module_list", "pragma_list",
        "compile_options", "database_list",
    }
)


def _sqlite_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    """Defense in depth on top of mode=ro: reads only, whatever the validator missed."""
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if arg2 and _function_denied(arg2) else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _SQLITE_READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    # pragma_* table functions load the schema through an UPDATE check on sqlite_master.
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _timeout_error(timeout_s: float) -> SqlTimeout:
    return SqlTimeout(
        f"query stopped: it ran past the time limit of {timeout_s:g} s "
        f"(raise {TIMEOUT_SETTING} or pass --timeout, or narrow the query)"
    )


def _classify(error: sa_exc.SQLAlchemyError, timeout_s: float) -> StorageError:
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        primary = code & 0xFF
        if primary == 9:  # SQLITE_INTERRUPT: our progress handler stopped it
            return _timeout_error(timeout_s)
        if primary in (8, 23):  # SQLITE_READONLY, SQLITE_AUTH
            return _refuse(f"the database refused it: {describe(error)}")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "57014":  # query_canceled: statement_timeout
        return _timeout_error(timeout_s)
    if sqlstate in ("25006", "42501"):  # read_only_sql_transaction, insufficient_privilege
        return _refuse(f"the database refused it: {describe(error)}")
    if is_transient(error):
        return DatabaseUnavailable(f"database unavailable: {describe(error)}")
    return SqlFailed(f"query failed: {describe(error)}")


def run_readonly(
    url: str,
    sql: str,
    *,
    timeout_s: float,
    max_rows: int,
    readonly_url: str | None = None,
) -> QueryResult:
    """Runs one read-only query on the store at ``url`` (or on ``readonly_url``, e.g. the
    PostgreSQL ``finsent_readonly`` login) within ``timeout_s``, keeping at most ``max_rows``.

    Raises ``SqlRefused`` (not a single read-only query), ``SqlTimeout``, ``SqlFailed``
    (the database rejected it) or ``DatabaseUnavailable``.
    """
    if timeout_s <= 0:
        raise StorageError(f"the time limit must be positive, got {timeout_s} ({TIMEOUT_SETTING})")
    if max_rows < 1:
        raise StorageError(f"the row cap must be at least 1, got {max_rows} ({MAX_ROWS_SETTING})")
    target = readonly_url or url
    dialect = sqlalchemy_url(target).get_backend_name()
    statement = validate_sql_select(sql, dialect)
    engine = make_engine(target, readonly=True)
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            run = _run_sqlite if dialect == "sqlite" else _run_postgres
            columns, rows = run(conn, statement, timeout_s, max_rows)
    except sa_exc.SQLAlchemyError as e:
        raise _classify(e, timeout_s) from e
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    truncated = len(rows) > max_rows
    return QueryResult(columns, rows[:max_rows], truncated, elapsed)


Fetched = tuple[list[str], list[tuple[Any, ...]]]


def _fetch(conn: Connection, statement: str, max_rows: int, **options: Any) -> Fetched:
    # no_parameters: the text goes to the driver as is, so '%' and '?' need no escaping.
    result = conn.execution_options(no_parameters=True, **options).exec_driver_sql(statement)
    if not result.returns_rows:
        return [], []
    columns = list(result.keys())
    return columns, [tuple(r) for r in result.fetchmany(max_rows + 1)]


def _run_sqlite(conn: Connection, statement: str, timeout_s: float, max_rows: int) -> Fetched:
    raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    deadline = time.perf_counter() + timeout_s
    handler: Callable[[], int] = lambda: int(time.perf_counter() > deadline)  # noqa: E731
    raw.set_progress_handler(handler, 1000)
    raw.set_authorizer(_sqlite_authorizer)
    try:
        return _fetch(conn, statement, max_rows)
    finally:
        raw.set_authorizer(None)
        raw.set_progress_handler(None, 0)
        conn.rollback()


def _run_postgres(conn: Connection, statement: str, timeout_s: float, max_rows: int) -> Fetched:
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
    try:
        # A server-side cursor, so a huge result is never pulled whole into memory; EXPLAIN
        # cannot run in one (DECLARE takes queries only), and its output is small anyway.
        explain = statement.lstrip("( \t\r\n").lower().startswith("explain")
        options: dict[str, Any] = {} if explain else {
            "stream_results": True,
            "max_row_buffer": max_rows + 1,
        }
        return _fetch(conn, statement, max_rows, **options)
    finally:
        conn.rollback()
