"""Engines and migrations for the two stores finsent supports: SQLite (local) and PostgreSQL.

Decisions that are not obvious from the code:

- SQLite runs in WAL mode so that the dashboard and ``finsent sql`` read while a worker writes;
  ``busy_timeout`` makes a second writer wait instead of failing at once, and foreign keys are
  switched on per connection because SQLite defaults them off.
- A read-only SQLite engine opens ``file:...?mode=ro`` and sets ``query_only``: the file cannot
  be written through it whatever SQL arrives. A read-only PostgreSQL engine starts every
  session with ``default_transaction_read_only``; the real wall in production is the
  ``finsent_readonly`` role (migration 0003).
- ``postgresql://`` URLs are mapped to the psycopg 3 driver, the one finsent installs.
- Migrations run programmatically from the package's own folder, so ``upgrade`` works from
  any working directory and from an installed wheel. Concurrent upgrades (several workers
  starting together) are serialized: a PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from storage.exceptions import DatabaseUnavailable, MigrationError, StorageError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_UPGRADE_LOCK = threading.Lock()
PG_CONNECT_TIMEOUT_S = 10

# SQLite primary result codes worth a retry: BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_TRANSIENT = {5, 6, 10, 13, 14, 15}
# PostgreSQL SQLSTATE classes worth a retry: connection, resources, operator intervention
# (shutdown, cancel), system error, transaction rollback (deadlock, serialization).
_PG_TRANSIENT_CLASSES = {"08", "53", "57", "58", "40"}

# Alembic >= 1.18 logs one INFO line per built-in plugin whenever it is imported.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def sqlalchemy_url(url: str) -> URL:
    """Parses a user's URL and picks finsent's driver for PostgreSQL."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as e:
        raise StorageError(
            f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql://...)"
        ) from e
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageError(
            f"unsupported database {backend!r} in {safe_url(url)}: finsent supports "
            "sqlite:///PATH and postgresql://USER@HOST/DB"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except sa_exc.ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)


def _sqlite_path(url: URL) -> str | None:
    """The database file, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:":
        return None
    return db


def make_engine(url: str, *, readonly: bool = False, busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``; ``readonly=True`` gives one that cannot write (see module doc).

    ``busy_timeout_s`` is how long a SQLite connection waits for another writer's lock before
    the statement fails (and the caller retries); PostgreSQL ignores it.
    """
    parsed = sqlalchemy_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, readonly=readonly, busy_timeout_s=busy_timeout_s)
    return _postgres_engine(parsed, readonly=readonly)


def _sqlite_engine(url: URL, *, readonly: bool, busy_timeout_s: float) -> Engine:
    path = _sqlite_path(url)
    busy_ms = int(busy_timeout_s * 1000)
    if readonly:
        if path is None:
            raise StorageError("a read-only engine needs a SQLite file, not an in-memory database")
        if not Path(path).exists():
            raise StorageError(
                f"SQLite database {path} does not exist; create it with `finsent db upgrade`"
            )
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro"

        def connect_ro() -> sqlite3.Connection:
            return sqlite3.connect(
                uri, uri=True, timeout=busy_timeout_s, check_same_thread=False
            )

        engine = create_engine(url, creator=connect_ro)
    else:
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            if readonly:
                cur.execute("PRAGMA query_only = ON")
            elif path is not None:
                cur.execute("PRAGMA journal_mode = WAL")
        finally:
            cur.close()

    return engine


def _postgres_engine(url: URL, *, readonly: bool) -> Engine:
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if readonly:
        options = str(url.query.get("options", ""))
        connect_args["options"] = f"{options} -c default_transaction_read_only=on".strip()
    # pre-ping: after a database restart, pooled connections are dead; find out before use.
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same work later may succeed (outage, lock, restart, deadlock)."""
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    orig = error.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_TRANSIENT
    if isinstance(orig, sqlite3.Error):
        return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate == "55P03"
    # No SQLSTATE from the server: the connection itself failed (refused, reset, timed out).
    return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)


def describe(error: BaseException) -> str:
    """The driver's first message line, without SQLAlchemy's statement dump."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def wrap_error(error: BaseException, doing: str) -> StorageError:
    """The StorageError for a library error: DatabaseUnavailable when a retry may help."""
    if isinstance(error, StorageError):
        return error
    if is_transient(error):
        return DatabaseUnavailable(f"{doing}: database unavailable: {describe(error)}")
    return StorageError(f"{doing}: {describe(error)}")


# --- migrations ------------------------------------------------------------------------------


def _alembic_config() -> Config:
    # Alembic is imported here, not at the top: engines and the SQL runner do not need it,
    # and importing it logs plugin set-up lines on every CLI call.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of finsent."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Brings the store at ``url`` to ``revision`` (default: newest); safe to run repeatedly
    and concurrently. A SQLite file and its folder are created when missing."""
    from alembic import command
    from alembic.util import CommandError

    parsed = sqlalchemy_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        # Alembic's `context` is process-global: one migration at a time per process; the
        # database lock in env.py serializes processes.
        with _UPGRADE_LOCK, engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except CommandError as e:
        raise MigrationError(f"migrating {safe_url(url)} failed: {e}") from e
    except sa_exc.SQLAlchemyError as e:
        raise wrap_error(e, f"migrating {safe_url(url)}") from e
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The store's migration revision; None for an empty or missing store (nothing created)."""
    from alembic.runtime.migration import MigrationContext

    parsed = sqlalchemy_url(url)
    readonly = False
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        if path is None or not Path(path).exists():
            return None
        readonly = True
    engine = make_engine(url, readonly=readonly)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa_exc.SQLAlchemyError as e:
        raise wrap_error(e, f"reading the revision of {safe_url(url)}") from e
    finally:
        engine.dispose()
