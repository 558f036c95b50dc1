"""Migrations on both stores: they create what the models declare, views included, and they
are safe to re-run, to run concurrently, and to undo."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage.db import current_revision, head_revision, make_engine, upgrade
from storage.exceptions import StorageError
from storage.models import Base
from storage.views import ALL_VIEWS

TABLES = {
    "documents",
    "scores",
    "mentions",
    "tickers",
    "dead_letters",
    "prices",
    "alert_rules",
    "alerts",
}


def test_upgrade_creates_tables_views_and_indexes(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        insp = inspect(engine)
        assert set(insp.get_table_names()) >= TABLES
        assert {v.name for v in ALL_VIEWS} == set(insp.get_view_names())
        mention_indexes = {i["name"]: i["column_names"] for i in insp.get_indexes("mentions")}
        assert mention_indexes["ix_mentions_ticker_event_at"] == ["ticker", "event_at"]
        doc_uniques = {u["name"] for u in insp.get_unique_constraints("documents")}
        assert "uq_documents_source_external_id" in doc_uniques
    finally:
        engine.dispose()
    assert current_revision(db_url) == head_revision()


def test_schema_matches_the_models(db_url: str) -> None:
    """The hand-written migration and storage/models.py must not drift apart."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_view_columns_match_their_typed_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        insp = inspect(engine)
        for view in ALL_VIEWS:
            assert [c["name"] for c in insp.get_columns(view.name)] == list(view.c.keys())
    finally:
        engine.dispose()


def test_upgrade_again_is_a_no_op(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tickers (symbol, name) VALUES ('AAPL', 'Apple')"))
        upgrade(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM tickers")).scalar_one() == "Apple"
    finally:
        engine.dispose()
    assert current_revision(db_url) == head_revision()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    from alembic import command

    from storage.db import _alembic_config

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert current_revision(db_url) is None
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(db_url)
        assert current_revision(db_url) == head_revision()
    finally:
        engine.dispose()


def _upgrade_in_processes(url: str, n: int) -> list[subprocess.CompletedProcess[str]]:
    """n separate processes upgrading the same store at the same moment, as workers do."""
    code = "import sys; from storage.db import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_concurrent_upgrades_do_not_collide(tmp_path: Path) -> None:
    """Workers starting together may all run `upgrade`; the migration lock serializes them."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    results = _upgrade_in_processes(url, 3)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    assert current_revision(url) == head_revision()


def test_concurrent_upgrades_in_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(url)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert current_revision(url) == head_revision()


@pytest.mark.postgres
def test_concurrent_upgrades_on_postgres(pg_url: str) -> None:
    """Same on PostgreSQL (pg_url comes migrated: its schema is emptied first)."""
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    assert current_revision(pg_url) is None
    results = _upgrade_in_processes(pg_url, 3)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    assert current_revision(pg_url) == head_revision()


def test_current_revision_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.exists()


def test_upgrade_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'finsent.db'}"
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_upgrade_works_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade("sqlite:///relative.db")
    assert (tmp_path / "relative.db").exists()
    assert current_revision("sqlite:///relative.db") == head_revision()


def test_unsupported_or_garbled_urls_are_clear() -> None:
    with pytest.raises(StorageError, match="unsupported database 'mysql'"):
        make_engine("mysql://u:secret@host/db")
    with pytest.raises(StorageError, match="not a database URL"):
        make_engine("no url at all")


def test_postgres_urls_use_psycopg3() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
    engine = make_engine("postgres://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.postgres
def test_readonly_role_can_read_everything_and_write_nothing(pg_admin, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """The migration's finsent_readonly role, through a login that inherits it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    login = f"finsent_t_reader_{make_url(pg_url).database[-8:]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE finsent_readonly"))
    reader_url = make_url(pg_url).set(username=login).render_as_string(hide_password=False)
    writer = make_engine(pg_url)
    # Plain engine, not readonly=True: the role alone must stop writes.
    reader = make_engine(reader_url)
    try:
        with writer.begin() as conn:
            conn.execute(text("INSERT INTO tickers (symbol, name) VALUES ('AAPL', 'Apple')"))
            # A table created after the migration: default privileges cover it too.
            conn.execute(text("CREATE TABLE later_table (x int)"))
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tickers")).scalar_one() == 1
            views = conn.execute(text("SELECT count(*) FROM ticker_sentiment_hour"))
            assert views.scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM later_table")).scalar_one() == 0
        for statement in (
            "INSERT INTO tickers (symbol, name) VALUES ('MSFT', 'Microsoft')",
            "DELETE FROM tickers",
            "CREATE TABLE evil (x int)",
            "DROP VIEW latest_scores",
        ):
            with (
                reader.connect() as conn,
                pytest.raises(DBAPIError, match="permission denied|must be owner"),
            ):
                conn.execute(text(statement))
    finally:
        reader.dispose()
        writer.dispose()
        with pg_admin.connect() as conn:
            database = make_url(pg_url).database
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE {login}"))
