"""Alembic migrations of the store (run by ``storage.db.upgrade``); a package so wheels ship it."""
