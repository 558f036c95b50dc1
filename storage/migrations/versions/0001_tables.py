"""Tables and indexes of the store.

As storage/models.py declares them at finsent 0.1.0.

Written out rather than generated from the models, so this revision stays what it was when
the models change later (the next change gets its own revision).

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL, INTEGER (the rowid alias, autoincrementing) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("author", sa.String(256), nullable=True),
        sa.Column("lang", sa.String(16), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("event_at", sa.DateTime(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("kafka_topic", sa.String(256), nullable=True),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("source", "external_id", name="uq_documents_source_external_id"),
    )
    op.create_index("ix_documents_event_at", "documents", ["event_at"])
    op.create_index("ix_documents_kind_event_at", "documents", ["kind", "event_at"])

    op.create_table(
        "scores",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "document_id",
            BigId,
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("p_negative", sa.Float(), nullable=False),
        sa.Column("p_neutral", sa.Float(), nullable=False),
        sa.Column("p_positive", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scored_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("document_id", "model_version", name="uq_scores_document_model"),
    )
    op.create_index("ix_scores_scored_at", "scores", ["scored_at"])

    op.create_table(
        "mentions",
        sa.Column(
            "document_id",
            BigId,
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ticker", sa.String(16), primary_key=True),
        sa.Column("event_at", sa.DateTime(), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
    )
    op.create_index("ix_mentions_ticker_event_at", "mentions", ["ticker", "event_at"])

    op.create_table(
        "tickers",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=True),
        sa.Column("sector", sa.String(64), nullable=True),
    )

    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_position"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])

    op.create_table(
        "prices",
        sa.Column("ticker", sa.String(16), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("close", sa.Float(), nullable=True),
        sa.Column("volume", sa.Float(), nullable=True),
    )

    op.create_table(
        "alert_rules",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("resolve_threshold", sa.Float(), nullable=True),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("min_count", sa.Integer(), nullable=False),
        sa.Column("for_s", sa.Integer(), nullable=False),
        sa.Column("cooldown_s", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
    )

    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "rule_id",
            BigId,
            sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_alerts_rule_ticker_status", "alerts", ["rule_id", "ticker", "status"])


def downgrade() -> None:
    for table in (
        "alerts",
        "alert_rules",
        "prices",
        "dead_letters",
        "tickers",
        "mentions",
        "scores",
        "documents",
    ):
        op.drop_table(table)
