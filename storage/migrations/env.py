"""Alembic environment: runs with the connection ``storage.db.upgrade`` hands over, or with the
URL of ``storage/alembic.ini`` when a developer runs the ``alembic`` command.

All pending migrations run in ONE transaction that also holds a lock, so two processes
upgrading together cannot interleave: PostgreSQL takes an advisory lock, SQLite begins with
``BEGIN IMMEDIATE`` (SQLite's DDL is transactional too).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.db import make_engine
from storage.models import Base

# An arbitrary constant: the advisory lock id that serializes finsent migrations.
_PG_MIGRATION_LOCK = 7_316_402_091

config = context.config


def _run(connection: Connection) -> None:
    if connection.in_transaction():
        connection.commit()
    trans = connection.begin()
    try:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        # Configured inside our transaction: Alembic then leaves begin/commit to us.
        context.configure(connection=connection, target_metadata=Base.metadata)
        context.run_migrations()
        trans.commit()
    except BaseException:
        if trans.is_active:
            trans.rollback()
        raise


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in storage/alembic.ini or use `finsent db upgrade`")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
