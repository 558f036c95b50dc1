"""The store's tables as SQLAlchemy 2.0 typed models; Alembic migrations create them.

Times are stored as naive UTC (both SQLite and PostgreSQL); ``event_at`` is the document's
published time, or its ingest time when the producer gave none, so every document sits on
the timeline that views and alerts use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# BIGINT on PostgreSQL, INTEGER (the rowid alias, autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Naive UTC, the convention of every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[int]: JSON}


class Document(Base):
    """One message, deduplicated on (source, external_id)."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_documents_source_external_id"),
        Index("ix_documents_event_at", "event_at"),
        Index("ix_documents_kind_event_at", "kind", "event_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))  # news | comment
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(256))
    lang: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    event_at: Mapped[datetime] = mapped_column(DateTime)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kafka_topic: Mapped[str | None] = mapped_column(String(256))
    kafka_partition: Mapped[int | None] = mapped_column(Integer)
    kafka_offset: Mapped[int | None] = mapped_column(BigInteger)

    scores: Mapped[list[Score]] = relationship(back_populates="document")
    mentions: Mapped[list[Mention]] = relationship(back_populates="document")


class Score(Base):
    """One model version's verdict on a document; rescoring adds rows, never overwrites."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("document_id", "model_version", name="uq_scores_document_model"),
        Index("ix_scores_scored_at", "scored_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(16))  # negative | neutral | positive
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)  # p_positive - p_negative, in [-1, 1]
    scored_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    document: Mapped[Document] = relationship(back_populates="scores")


class Mention(Base):
    """A ticker a document talks about; event_at is copied for per-ticker time-range scans."""

    __tablename__ = "mentions"
    __table_args__ = (Index("ix_mentions_ticker_event_at", "ticker", "event_at"),)

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_at: Mapped[datetime] = mapped_column(DateTime)
    how: Mapped[str] = mapped_column(String(16))  # explicit | cashtag | name

    document: Mapped[Document] = relationship(back_populates="mentions")


class DocumentsHourly(Base):
    """Documents per hour of ``event_at`` and kind, scored or not (the volume chart).

    Like the two sentiment rollups below, kept by ``storage.writes.save_batch`` in the
    batch's own transaction from the rows it really inserted, so a replayed batch adds
    nothing; migration 0004 backfilled what was stored before. Counts and sums, never
    means: every batch adds to them exactly, and a mean over any set of hours is
    ``sum(sum_score) / sum(n)``. Nothing deletes documents or scores today; code that ever
    does must subtract from these in the same transaction.
    """

    __tablename__ = "documents_hourly"

    bucket: Mapped[datetime] = mapped_column(DateTime, primary_key=True)  # the hour's start
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class SentimentHourly(Base):
    """Market-wide: scores per model version, hour of the document's ``event_at`` and kind."""

    __tablename__ = "sentiment_hourly"

    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    sum_score: Mapped[float] = mapped_column(Float)
    n_negative: Mapped[int] = mapped_column(BigInteger)


class TickerHourly(Base):
    """Per ticker: (mention, score) pairs per model version and hour of the mention's
    ``event_at``. The key leads with (model_version, bucket) for the movers' all-ticker scan;
    the index serves one ticker's timeline."""

    __tablename__ = "ticker_hourly"
    __table_args__ = (Index("ix_ticker_hourly_ticker", "ticker", "model_version", "bucket"),)

    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    sum_score: Mapped[float] = mapped_column(Float)
    n_negative: Mapped[int] = mapped_column(BigInteger)


class Ticker(Base):
    """Reference table of symbols and company names (shipped with finsent, loaded on upgrade)."""

    __tablename__ = "tickers"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    aliases: Mapped[str | None] = mapped_column(Text)  # '|' separated
    sector: Mapped[str | None] = mapped_column(String(64))


class DeadLetter(Base):
    """A record that could not be decoded or validated, kept byte for byte with the reason."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_position"),
        Index("ix_dead_letters_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Price(Base):
    """Daily OHLCV for the ticker page's price overlay."""

    __tablename__ = "prices"

    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[datetime] = mapped_column(Date, primary_key=True)
    open: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    close: Mapped[float | None] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)


class AlertRule(Base):
    """A rule over a rolling window; see the alert engine for the semantics of each field."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # mean_below|mean_above|neg_share_above|volume_z
    scope: Mapped[str] = mapped_column(String(16))  # ticker | kind | market
    target: Mapped[str | None] = mapped_column(String(64))  # a ticker, a kind, or None = each/all
    threshold: Mapped[float] = mapped_column(Float)
    resolve_threshold: Mapped[float | None] = mapped_column(Float)
    window_s: Mapped[int] = mapped_column(Integer)
    min_count: Mapped[int] = mapped_column(Integer, default=5)
    for_s: Mapped[int] = mapped_column(Integer, default=0)
    cooldown_s: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # pending-since per ticker


class Alert(Base):
    """One firing of a rule for one ticker (or scope); one open alert per rule and ticker."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_rule_ticker_status", "rule_id", "ticker", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(64))  # ticker, kind, or '*' for market-wide
    status: Mapped[str] = mapped_column(String(16))  # open | resolved
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    value: Mapped[float] = mapped_column(Float)
    last_value: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[list[int] | None] = mapped_column(JSON)  # document ids
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
