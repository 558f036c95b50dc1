"""SQL views: ticker and market sentiment aggregates, latest score per document.

Per-ticker sentiment per minute and per hour, market sentiment per hour and kind, and each
document's newest score, so that analysts do not rewrite these queries.

Every aggregate keeps ``model_version`` as a column: rescoring with a new model adds rows, and
mixing two models' scores in one mean would be meaningless.

SQLite buckets are strings in exactly the form SQLAlchemy stores DateTime on SQLite
(``YYYY-MM-DD HH:MM:SS.ffffff``), so comparing a bucket with a bound datetime parameter is
right; PostgreSQL buckets are ``date_trunc`` timestamps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_BUCKET = {
    "minute": "strftime('%Y-%m-%d %H:%M:00.000000', {col})",
    "hour": "strftime('%Y-%m-%d %H:00:00.000000', {col})",
}
_PG_BUCKET = {"minute": "date_trunc('minute', {col})", "hour": "date_trunc('hour', {col})"}

_NEGATIVE_SHARE = (
    "CAST(AVG(CASE WHEN s.label = 'negative' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)"
)


def _ticker_view(bucket: str) -> str:
    return f"""
SELECT m.ticker AS ticker,
       {bucket} AS bucket,
       s.model_version AS model_version,
       COUNT(*) AS n,
       AVG(s.score) AS mean_score,
       {_NEGATIVE_SHARE} AS negative_share
FROM mentions AS m
JOIN scores AS s ON s.document_id = m.document_id
GROUP BY m.ticker, {bucket}, s.model_version"""


def _market_view(bucket: str) -> str:
    return f"""
SELECT {bucket} AS bucket,
       d.kind AS kind,
       s.model_version AS model_version,
       COUNT(*) AS n,
       AVG(s.score) AS mean_score,
       {_NEGATIVE_SHARE} AS negative_share
FROM documents AS d
JOIN scores AS s ON s.document_id = d.id
GROUP BY {bucket}, d.kind, s.model_version"""


_SCORE_COLUMNS = """s.document_id AS document_id,
       s.id AS score_id,
       s.model_version AS model_version,
       s.label AS label,
       s.p_negative AS p_negative,
       s.p_neutral AS p_neutral,
       s.p_positive AS p_positive,
       s.score AS score,
       s.scored_at AS scored_at"""

_LATEST_SQLITE = f"""
SELECT document_id, score_id, model_version, label, p_negative, p_neutral, p_positive, score,
       scored_at
FROM (
    SELECT {_SCORE_COLUMNS},
           ROW_NUMBER() OVER (
               PARTITION BY s.document_id ORDER BY s.scored_at DESC, s.id DESC
           ) AS rn
    FROM scores AS s
) AS ranked
WHERE rn = 1"""

_LATEST_PG = f"""
SELECT DISTINCT ON (s.document_id)
       {_SCORE_COLUMNS}
FROM scores AS s
ORDER BY s.document_id, s.scored_at DESC, s.id DESC"""

VIEWS = ("ticker_sentiment_minute", "ticker_sentiment_hour", "market_sentiment_hour",
         "latest_scores")


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    buckets = _SQLITE_BUCKET if sqlite else _PG_BUCKET
    bodies = {
        "ticker_sentiment_minute": _ticker_view(buckets["minute"].format(col="m.event_at")),
        "ticker_sentiment_hour": _ticker_view(buckets["hour"].format(col="m.event_at")),
        "market_sentiment_hour": _market_view(buckets["hour"].format(col="d.event_at")),
        "latest_scores": _LATEST_SQLITE if sqlite else _LATEST_PG,
    }
    for name in VIEWS:
        op.execute(f"CREATE VIEW {name} AS{bodies[name]}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
