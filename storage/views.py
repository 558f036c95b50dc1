"""The SQL views (migration 0002) as typed, read-only SQLAlchemy tables.

Select from these rather than writing ``text("SELECT ... FROM ticker_sentiment_hour")``: the
column types make SQLAlchemy return ``bucket`` as a datetime on SQLite too (where the view
yields text), and bind datetime parameters in the same form, so ``bucket >= since`` compares
right on both databases.

They live on their own ``MetaData``, never ``Base.metadata``: ``create_all`` must not turn a
view into a table, and Alembic's comparison with the models must not see them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, MetaData, String, Table

VIEWS_METADATA = MetaData()


def _sentiment_columns() -> list[Column[object]]:
    return [
        Column("model_version", String(128)),
        Column("n", BigInteger),
        Column("mean_score", Float),
        Column("negative_share", Float),
    ]


ticker_sentiment_minute = Table(
    "ticker_sentiment_minute",
    VIEWS_METADATA,
    Column("ticker", String(16)),
    Column("bucket", DateTime),
    *_sentiment_columns(),
)
"""Per ticker, minute and model version: documents mentioning it, mean score, negative share."""

ticker_sentiment_hour = Table(
    "ticker_sentiment_hour",
    VIEWS_METADATA,
    Column("ticker", String(16)),
    Column("bucket", DateTime),
    *_sentiment_columns(),
)
"""Like ``ticker_sentiment_minute``, per hour."""

market_sentiment_hour = Table(
    "market_sentiment_hour",
    VIEWS_METADATA,
    Column("bucket", DateTime),
    Column("kind", String(16)),
    *_sentiment_columns(),
)
"""Per hour, document kind (news | comment) and model version, over all documents."""

latest_scores = Table(
    "latest_scores",
    VIEWS_METADATA,
    Column("document_id", BigInteger),
    Column("score_id", BigInteger),
    Column("model_version", String(128)),
    Column("label", String(16)),
    Column("p_negative", Float),
    Column("p_neutral", Float),
    Column("p_positive", Float),
    Column("score", Float),
    Column("scored_at", DateTime),
)
"""One row per scored document: its newest score (latest ``scored_at``, whatever the model)."""

ALL_VIEWS: tuple[Table, ...] = (
    ticker_sentiment_minute,
    ticker_sentiment_hour,
    market_sentiment_hour,
    latest_scores,
)
