"""Idempotent batch writes: what the worker commits before it moves its Kafka offsets.

One call is ONE transaction: documents, scores, mentions and dead letters of a batch are all
written or none are. Every insert is ``ON CONFLICT DO NOTHING`` on its natural key, so a
replayed batch (at-least-once delivery) adds nothing, and rescoring with a new model version
adds score rows without touching the old ones.

Items are checked before any SQL runs. A value the database would refuse (a key longer than
its column, a NUL character, a NaN score) would otherwise fail the whole transaction on every
retry and block the partition; ``InvalidDocument`` names the bad items so the caller can
dead-letter them and save the rest. Dead letters themselves are never refused: their reason
and topic are made storable instead, because losing them would lose the record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import wrap_error
from storage.exceptions import InvalidDocument, StorageError
from storage.models import DeadLetter, Document, Mention, Score, Ticker, utcnow

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

DOCUMENTS: Table = Document.__table__  # type: ignore[assignment]
SCORES: Table = Score.__table__  # type: ignore[assignment]
MENTIONS: Table = Mention.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetter.__table__  # type: ignore[assignment]
TICKERS: Table = Ticker.__table__  # type: ignore[assignment]


def _max_len(table: Table, column: str) -> int:
    length = getattr(table.c[column].type, "length", None)
    assert length is not None, f"{table.name}.{column} has no length"
    return int(length)


# Column limits, read from the models so they can never drift from the schema.
LIMITS: dict[str, int] = {
    "source": _max_len(DOCUMENTS, "source"),
    "external_id": _max_len(DOCUMENTS, "external_id"),
    "kind": _max_len(DOCUMENTS, "kind"),
    "author": _max_len(DOCUMENTS, "author"),
    "lang": _max_len(DOCUMENTS, "lang"),
    "kafka_topic": _max_len(DOCUMENTS, "kafka_topic"),
    "model_version": _max_len(SCORES, "model_version"),
    "label": _max_len(SCORES, "label"),
    "ticker": _max_len(MENTIONS, "ticker"),
    "how": _max_len(MENTIONS, "how"),
}

# NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_KEY_CHUNK = 500  # ids per `IN (...)` when resolving document ids


@dataclass(frozen=True)
class DocumentIn:
    source: str
    external_id: str
    kind: str
    text: str
    title: str | None
    url: str | None
    author: str | None
    lang: str | None
    published_at: datetime | None
    event_at: datetime
    extra: dict[str, Any] | None
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None


@dataclass(frozen=True)
class ScoreIn:
    model_version: str
    label: str
    p_negative: float
    p_neutral: float
    p_positive: float
    score: float


@dataclass(frozen=True)
class MentionIn:
    ticker: str
    how: str


@dataclass(frozen=True)
class ScoredDocument:
    document: DocumentIn
    score: ScoreIn
    mentions: list[MentionIn]


@dataclass(frozen=True)
class DeadLetterIn:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    reason: str


@dataclass(frozen=True)
class BatchResult:
    """Rows actually inserted; a replayed batch gives all zeros."""

    documents_inserted: int
    scores_inserted: int
    mentions_inserted: int
    dead_letters_inserted: int


# --- checks ------------------------------------------------------------------------------


def naive_utc(ts: datetime) -> datetime:
    """The store keeps naive UTC; aware times are converted, naive ones taken as UTC."""
    if ts.tzinfo is not None:
        return ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def _check_text(name: str, value: object, *, required: bool) -> str | None:
    if value is None:
        return f"{name} is missing" if required else None
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    if required and not value:
        return f"{name} is empty"
    limit = LIMITS.get(name)
    if limit is not None and len(value) > limit:
        return f"{name} is longer than {limit} characters ({len(value)})"
    bad = _UNSTORABLE.search(value)
    if bad:
        return f"{name} contains an unstorable character U+{ord(bad.group()):04X}"
    return None


def _check_probability(name: str, value: object, low: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be a number, got {type(value).__name__}"
    if not math.isfinite(value) or not low - 1e-6 <= value <= 1.0 + 1e-6:
        return f"{name} must be a finite number in [{low:g}, 1], got {value!r}"
    return None


def check_item(item: ScoredDocument) -> str | None:
    """Why ``item`` cannot be stored, or None when it can."""
    d, s = item.document, item.score
    checks = [
        _check_text("source", d.source, required=True),
        _check_text("external_id", d.external_id, required=True),
        _check_text("kind", d.kind, required=True),
        _check_text("text", d.text, required=True),
        _check_text("title", d.title, required=False),
        _check_text("url", d.url, required=False),
        _check_text("author", d.author, required=False),
        _check_text("lang", d.lang, required=False),
        _check_text("kafka_topic", d.kafka_topic, required=False),
        _check_text("model_version", s.model_version, required=True),
    ]
    if s.label not in LABELS:
        checks.append(f"label must be one of {', '.join(LABELS)}, got {s.label!r}")
    for name, value, low in (
        ("p_negative", s.p_negative, 0.0),
        ("p_neutral", s.p_neutral, 0.0),
        ("p_positive", s.p_positive, 0.0),
        ("score", s.score, -1.0),
    ):
        checks.append(_check_probability(name, value, low))
    if not isinstance(d.event_at, datetime):
        checks.append("event_at must be a datetime")
    if d.published_at is not None and not isinstance(d.published_at, datetime):
        checks.append("published_at must be a datetime or None")
    if d.extra is not None:
        checks.append(_check_extra(d.extra))
    for m in item.mentions:
        checks.append(_check_text("ticker", m.ticker, required=True))
        checks.append(_check_text("how", m.how, required=True))
    return next((c for c in checks if c), None)


def _check_extra(extra: object) -> str | None:
    if not isinstance(extra, dict):
        return f"extra must be a dict, got {type(extra).__name__}"
    try:
        dumped = json.dumps(extra, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        return f"extra is not storable as JSON: {e}"
    bad = _UNSTORABLE.search(dumped)
    if bad:
        return f"extra contains an unstorable character U+{ord(bad.group()):04X}"
    return None


def _storable(text: str, limit: int | None = None) -> str:
    """For dead letters only: replace what the database refuses, cut to the column."""
    text = _UNSTORABLE.sub("\ufffd", text)
    return text[:limit] if limit is not None else text


# --- the batch ---------------------------------------------------------------------------


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def _document_row(d: DocumentIn, now: datetime) -> dict[str, Any]:
    return {
        "source": d.source,
        "external_id": d.external_id,
        "kind": d.kind,
        "title": d.title,
        "text": d.text,
        "url": d.url,
        "author": d.author,
        "lang": d.lang,
        "published_at": naive_utc(d.published_at) if d.published_at is not None else None,
        "event_at": naive_utc(d.event_at),
        "ingested_at": now,
        "extra": d.extra,
        "kafka_topic": d.kafka_topic,
        "kafka_partition": d.kafka_partition,
        "kafka_offset": d.kafka_offset,
    }


def save_batch(
    engine: Engine,
    items: Sequence[ScoredDocument],
    dead_letters: Sequence[DeadLetterIn] = (),
) -> BatchResult:
    """Stores a scored batch and its dead letters in one transaction; idempotent.

    Duplicates inside the batch are fine (the first occurrence wins). Raises
    ``InvalidDocument`` before writing anything when items cannot be stored,
    ``DatabaseUnavailable`` when a retry may help, ``StorageError`` otherwise.
    """
    reasons = {i: r for i, item in enumerate(items) if (r := check_item(item)) is not None}
    if reasons:
        raise InvalidDocument(reasons)
    now = utcnow()
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    scores: dict[tuple[tuple[str, str], str], ScoreIn] = {}
    mentions: dict[tuple[tuple[str, str], str], tuple[MentionIn, datetime]] = {}
    for item in items:
        d = item.document
        key = (d.source, d.external_id)
        row = docs.setdefault(key, _document_row(d, now))
        scores.setdefault((key, item.score.model_version), item.score)
        for m in item.mentions:
            mentions.setdefault((key, m.ticker), (m, row["event_at"]))
    dead: dict[tuple[str, int, int], dict[str, Any]] = {}
    for dl in dead_letters:
        topic = _storable(dl.topic, _max_len(DEAD_LETTERS, "topic"))
        dead.setdefault(
            (topic, dl.partition, dl.offset),
            {
                "topic": topic,
                "partition": dl.partition,
                "offset": dl.offset,
                "key": dl.key,
                "raw": dl.raw if dl.raw is not None else b"",
                "reason": _storable(dl.reason),
                "received_at": now,
            },
        )
    try:
        with engine.begin() as conn:
            n_docs, ids = _insert_documents(conn, list(docs.values()))
            n_scores = _insert_rows(
                conn,
                SCORES,
                ["document_id", "model_version"],
                [
                    {
                        "document_id": ids[key],
                        "model_version": s.model_version,
                        "label": s.label,
                        "p_negative": float(s.p_negative),
                        "p_neutral": float(s.p_neutral),
                        "p_positive": float(s.p_positive),
                        "score": float(s.score),
                        "scored_at": now,
                    }
                    for (key, _), s in scores.items()
                ],
            )
            n_mentions = _insert_rows(
                conn,
                MENTIONS,
                ["document_id", "ticker"],
                [
                    {"document_id": ids[key], "ticker": m.ticker, "event_at": at, "how": m.how}
                    for (key, _), (m, at) in mentions.items()
                ],
            )
            n_dead = _insert_rows(
                conn, DEAD_LETTERS, ["topic", "partition", "offset"], list(dead.values())
            )
    except sa_exc.SQLAlchemyError as e:
        raise wrap_error(e, "saving a batch") from e
    return BatchResult(n_docs, n_scores, n_mentions, n_dead)


def _insert_rows(
    conn: Connection, table: Table, key: list[str], rows: list[dict[str, Any]]
) -> int:
    """Bulk INSERT .. ON CONFLICT (key) DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return len(_pg_insert_unnest(conn, table, key, rows, returning=key[:1]))
    # sqlite3 runs executemany as one prepared statement and sums rowcount over it (a row
    # ignored on conflict counts 0).
    stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=key)
    return int(conn.execute(stmt, rows).rowcount)


def _pg_insert_unnest(
    conn: Connection,
    table: Table,
    key: list[str],
    rows: list[dict[str, Any]],
    returning: list[str],
) -> list[Any]:
    """PostgreSQL: one INSERT .. SELECT FROM unnest(arrays) per table and batch.

    The statement text is the same for every batch, so psycopg parses and prepares it once;
    a multi-row VALUES list is new text each time and its parsing cost more than the insert.
    """
    quote = conn.dialect.identifier_preparer.quote
    cols = list(rows[0])
    params: dict[str, list[Any]] = {}
    arrays: list[str] = []
    selects: list[str] = []
    for i, name in enumerate(cols):
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            params[f"p{i}"] = [None if v is None else json.dumps(v) for v in values]
            arrays.append(f"CAST(:p{i} AS TEXT[])")
            selects.append(f"CAST(u.c{i} AS JSON)")
        else:
            params[f"p{i}"] = values
            arrays.append(f"CAST(:p{i} AS {table.c[name].type.compile(dialect=conn.dialect)}[])")
            selects.append(f"u.c{i}")
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in cols)}) "
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) "
        f"AS u({', '.join(f'c{i}' for i in range(len(cols)))}) "
        f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO NOTHING "
        f"RETURNING {', '.join(quote(c) for c in returning)}"
    )
    return list(conn.execute(text(sql), params).all())


def _insert_documents(
    conn: Connection, rows: list[dict[str, Any]]
) -> tuple[int, dict[tuple[str, str], int]]:
    """Inserts new documents; returns how many were new and the id of every key."""
    if not rows:
        return 0, {}
    ids: dict[tuple[str, str], int] = {}
    if conn.dialect.name == "postgresql":
        new = _pg_insert_unnest(
            conn, DOCUMENTS, ["source", "external_id"], rows, ["id", "source", "external_id"]
        )
        ids = {(src, ext): id_ for id_, src, ext in new}
        inserted = len(new)
    else:
        inserted = _insert_rows(conn, DOCUMENTS, ["source", "external_id"], rows)
    missing: dict[str, list[str]] = {}
    for row in rows:
        if (row["source"], row["external_id"]) not in ids:
            missing.setdefault(row["source"], []).append(row["external_id"])
    for source, external_ids in missing.items():
        for i in range(0, len(external_ids), _KEY_CHUNK):
            chunk = external_ids[i : i + _KEY_CHUNK]
            found = conn.execute(
                select(DOCUMENTS.c.id, DOCUMENTS.c.external_id).where(
                    DOCUMENTS.c.source == source, DOCUMENTS.c.external_id.in_(chunk)
                )
            )
            for id_, ext in found:
                ids[(source, ext)] = id_
    return inserted, ids


# --- reference data ----------------------------------------------------------------------


def upsert_tickers(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Loads the ticker reference table (symbol, name, aliases, sector); re-running updates
    names and aliases in place. ``aliases`` may be a '|'-joined string or a list. Returns the
    number of distinct symbols written."""
    clean: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        symbol = row.get("symbol")
        name = row.get("name")
        aliases = row.get("aliases")
        if isinstance(aliases, list | tuple):
            aliases = "|".join(str(a) for a in aliases)
        values = {"symbol": symbol, "name": name, "aliases": aliases, "sector": row.get("sector")}
        for field, limit, required in (
            ("symbol", LIMITS["ticker"], True),
            ("name", _max_len(TICKERS, "name"), True),
            ("aliases", None, False),
            ("sector", _max_len(TICKERS, "sector"), False),
        ):
            value = values[field]
            problem = _check_text(field, value, required=required)
            if problem is None and limit is not None and value is not None and len(value) > limit:
                problem = f"{field} is longer than {limit} characters"
            if problem:
                raise StorageError(f"ticker row {i} ({symbol!r}): {problem}")
        clean[str(symbol)] = values
    if not clean:
        return 0
    try:
        with engine.begin() as conn:
            stmt = _insert(conn, TICKERS)
            stmt = stmt.on_conflict_do_update(
                index_elements=["symbol"],
                set_={c: stmt.excluded[c] for c in ("name", "aliases", "sector")},
            )
            conn.execute(stmt, list(clean.values()))
    except sa_exc.SQLAlchemyError as e:
        raise wrap_error(e, "loading tickers") from e
    return len(clean)
