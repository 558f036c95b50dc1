"""PostgreSQL read-only role finsent_readonly.

The role that the SQL console and ``finsent sql`` use in production.

The role is NOLOGIN (a group role: no password, cannot connect by itself); an operator creates
a login that inherits it, e.g.
``CREATE ROLE finsent_reader LOGIN PASSWORD '...' IN ROLE finsent_readonly;``
and sets ``FINSENT_DATABASE_READONLY_URL`` to that login. It may SELECT every table and view
of the schema, now and later (default privileges), and nothing else.

Roles are cluster-wide, so it is created only if missing (two databases, or two workers
upgrading at once, must not fail), and it is never dropped on downgrade (other databases may
use it). A migrating user without CREATEROLE gets a warning instead of a failed migration:
the store works, only the console falls back to read-only transactions.

SQLite has no roles: its console opens the file with ``mode=ro``; nothing to do here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "finsent_readonly"

_UPGRADE = f"""
DO $finsent$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by another migration
        END;
    END IF;
    BEGIN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'finsent: cannot grant CONNECT on the database to {ROLE}';
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {ROLE}',
        current_schema()
    );
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'finsent: no privilege to create or grant role {ROLE}; '
        'the SQL console will rely on read-only transactions only';
END
$finsent$;
"""

_DOWNGRADE = f"""
DO $finsent$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{ROLE}') THEN
        EXECUTE format(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {ROLE}',
            current_schema()
        );
        EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM {ROLE}', current_schema());
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema());
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database());
    END IF;
END
$finsent$;
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_UPGRADE)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_DOWNGRADE)
