"""Hourly rollups: documents_hourly, sentiment_hourly, ticker_hourly, backfilled.

The dashboard's long ranges (7 days to all time) read these instead of scanning every
document of the range; ``storage.writes.save_batch`` keeps them in each batch's transaction.
They hold counts and sums (never means), so batches add to them exactly.

The backfill groups what is already stored with the same hour buckets save_batch computes:
on SQLite the text SQLAlchemy stores for a DateTime (``YYYY-MM-DD HH:00:00.000000``), on
PostgreSQL ``date_trunc('hour', ...)``. It runs inside the migration's transaction (and lock),
so no batch lands between the backfill and the first increment.

The hourly views of 0002 (``ticker_sentiment_hour``, ``market_sentiment_hour``) are
redefined over the rollups: same columns, same numbers (a mean is ``sum_score / n``), but an
analyst's query no longer groups the raw tables. Downgrading restores 0002's definitions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOUR = {
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', {col})",
    "postgresql": "date_trunc('hour', {col})",
}
_NEGATIVES = "SUM(CASE WHEN s.label = 'negative' THEN 1 ELSE 0 END)"


def _sentiment_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("sum_score", sa.Float(), nullable=False),
        sa.Column("n_negative", sa.BigInteger(), nullable=False),
    ]


def _backfill(hour: str) -> list[str]:
    doc_hour = hour.format(col="d.event_at")
    mention_hour = hour.format(col="m.event_at")
    return [
        f"""
INSERT INTO documents_hourly (bucket, kind, n)
SELECT {doc_hour}, d.kind, COUNT(*)
FROM documents AS d
GROUP BY {doc_hour}, d.kind""",
        f"""
INSERT INTO sentiment_hourly (model_version, bucket, kind, n, sum_score, n_negative)
SELECT s.model_version, {doc_hour}, d.kind, COUNT(*), SUM(s.score), {_NEGATIVES}
FROM documents AS d
JOIN scores AS s ON s.document_id = d.id
GROUP BY s.model_version, {doc_hour}, d.kind""",
        f"""
INSERT INTO ticker_hourly (model_version, bucket, ticker, n, sum_score, n_negative)
SELECT s.model_version, {mention_hour}, m.ticker, COUNT(*), SUM(s.score), {_NEGATIVES}
FROM mentions AS m
JOIN scores AS s ON s.document_id = m.document_id
GROUP BY s.model_version, {mention_hour}, m.ticker""",
    ]


_SHARES = """n AS n,
       sum_score / n AS mean_score,
       CAST(n_negative AS DOUBLE PRECISION) / n AS negative_share"""
_VIEWS = {
    "ticker_sentiment_hour": f"""
SELECT ticker AS ticker,
       bucket AS bucket,
       model_version AS model_version,
       {_SHARES}
FROM ticker_hourly""",
    "market_sentiment_hour": f"""
SELECT bucket AS bucket,
       kind AS kind,
       model_version AS model_version,
       {_SHARES}
FROM sentiment_hourly""",
}


def _views_of_0002() -> dict[str, str]:
    """0002's bodies of the two views, from 0002 itself (a frozen revision)."""
    v0002 = import_module("storage.migrations.versions.0002_views")
    sqlite = op.get_context().dialect.name == "sqlite"
    buckets = v0002._SQLITE_BUCKET if sqlite else v0002._PG_BUCKET
    return {
        "ticker_sentiment_hour": v0002._ticker_view(buckets["hour"].format(col="m.event_at")),
        "market_sentiment_hour": v0002._market_view(buckets["hour"].format(col="d.event_at")),
    }


def _replace_views(bodies: dict[str, str]) -> None:
    for name, body in bodies.items():
        op.execute(f"DROP VIEW {name}")
        op.execute(f"CREATE VIEW {name} AS{body}")


def upgrade() -> None:
    op.create_table(
        "documents_hourly",
        sa.Column("bucket", sa.DateTime(), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "sentiment_hourly",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("bucket", sa.DateTime(), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        *_sentiment_columns(),
    )
    op.create_table(
        "ticker_hourly",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("bucket", sa.DateTime(), primary_key=True),
        sa.Column("ticker", sa.String(16), primary_key=True),
        *_sentiment_columns(),
    )
    op.create_index(
        "ix_ticker_hourly_ticker", "ticker_hourly", ["ticker", "model_version", "bucket"]
    )
    for statement in _backfill(_HOUR[op.get_context().dialect.name]):
        op.execute(statement)
    _replace_views(_VIEWS)


def downgrade() -> None:
    _replace_views(_views_of_0002())
    for table in ("ticker_hourly", "sentiment_hourly", "documents_hourly"):
        op.drop_table(table)
