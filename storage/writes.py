"""Idempotent batch writes: what the worker commits before it moves its Kafka offsets.

One call is ONE transaction: documents, scores, mentions and dead letters of a batch are all
written or none are. Every insert is ``ON CONFLICT DO NOTHING`` on its natural key, so a
replayed batch (at-least-once delivery) adds nothing, and rescoring with a new model version
adds score rows without touching the old ones.

The same transaction adds the batch to the hourly rollups (``documents_hourly``,
``sentiment_hourly``, ``ticker_hourly``) that the dashboard's long ranges read. The increments
come from the rows the inserts report as really inserted (``RETURNING``, which skips rows
ignored on conflict), never from the batch as sent: a replay or a duplicate adds nothing,
and a rescoring or a newly found ticker adds exactly the new pairs.

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
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import wrap_error
from storage.exceptions import InvalidDocument, StorageError
from storage.models import (
    DeadLetter,
    Document,
    DocumentsHourly,
    Mention,
    Score,
    SentimentHourly,
    Ticker,
    TickerHourly,
    utcnow,
)

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

DOCUMENTS: Table = Document.__table__  # type: ignore[assignment]
SCORES: Table = Score.__table__  # type: ignore[assignment]
MENTIONS: Table = Mention.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetter.__table__  # type: ignore[assignment]
TICKERS: Table = Ticker.__table__  # type: ignore[assignment]
DOCUMENTS_HOURLY: Table = DocumentsHourly.__table__  # type: ignore[assignment]
SENTIMENT_HOURLY: Table = SentimentHourly.__table__  # type: ignore[assignment]
TICKER_HOURLY: Table = TickerHourly.__table__  # type: ignore[assignment]


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
    mentions: dict[tuple[tuple[str, str], str], MentionIn] = {}
    for item in items:
        d = item.document
        key = (d.source, d.external_id)
        docs.setdefault(key, _document_row(d, now))
        scores.setdefault((key, item.score.model_version), item.score)
        for m in item.mentions:
            mentions.setdefault((key, m.ticker), m)
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
            stored, new_docs = _insert_documents(conn, list(docs.values()))
            new_scores = _insert_new(
                conn,
                SCORES,
                ["document_id", "model_version"],
                [
                    {
                        "document_id": stored[key].id,
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
            # A mention copies the STORED document's event_at (a replay may carry another
            # time): per-ticker ranges and the ticker rollup then agree with the documents.
            new_mentions = _insert_new(
                conn,
                MENTIONS,
                ["document_id", "ticker"],
                [
                    {
                        "document_id": stored[key].id,
                        "ticker": m.ticker,
                        "event_at": stored[key].event_at,
                        "how": m.how,
                    }
                    for (key, _), m in mentions.items()
                ],
            )
            n_dead = _insert_rows(
                conn, DEAD_LETTERS, ["topic", "partition", "offset"], list(dead.values())
            )
            _add_to_rollups(
                conn, {d.id: d for d in stored.values()}, new_docs, new_scores, new_mentions
            )
    except sa_exc.SQLAlchemyError as e:
        raise wrap_error(e, "saving a batch") from e
    return BatchResult(len(new_docs), len(new_scores), len(new_mentions), n_dead)


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


def _insert_returning(
    conn: Connection, table: Table, key: list[str], rows: list[dict[str, Any]], returning: list[str]
) -> list[Any]:
    """Bulk INSERT .. ON CONFLICT (key) DO NOTHING RETURNING: the rows really inserted."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return _pg_insert_unnest(conn, table, key, rows, returning=returning)
    # SQLite (>= 3.35) returns only inserted rows too. One multi-row VALUES statement per
    # page of rows, its text cached per size: SQLAlchemy's own insert() for SQLite would be
    # compiled again on every call, which costs more than the insert.
    dialect = conn.dialect
    if not dialect.insert_returning:
        raise StorageError(
            f"finsent needs SQLite 3.35 or newer (INSERT .. RETURNING); this Python's sqlite3 "
            f"module links SQLite {sqlite3.sqlite_version}"
        )
    cols = tuple(rows[0])
    convert = [(c, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for c in cols]
    page = dialect.insertmanyvalues_max_parameters // len(cols)
    out: list[Any] = []
    for i in range(0, len(rows), page):
        chunk = rows[i : i + page]
        sql = _sqlite_insert_sql(table, cols, tuple(key), tuple(returning), len(chunk))
        params = tuple(
            f(row[c]) if f is not None else row[c] for row in chunk for c, f in convert
        )
        out += conn.exec_driver_sql(sql, params).all()
    return out


@lru_cache(maxsize=64)
def _sqlite_insert_sql(
    table: Table, cols: tuple[str, ...], key: tuple[str, ...], returning: tuple[str, ...], n: int
) -> str:
    def names(columns: tuple[str, ...]) -> str:
        return ", ".join(f'"{c}"' for c in columns)

    values = "(" + ", ".join("?" * len(cols)) + ")"
    return (
        f'INSERT INTO "{table.name}" ({names(cols)}) VALUES {", ".join([values] * n)} '
        f"ON CONFLICT ({names(key)}) DO NOTHING RETURNING {names(returning)}"
    )


def _insert_new(
    conn: Connection, table: Table, key: list[str], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Inserts ``rows`` (unique on ``key``) ignoring conflicts; returns those inserted."""
    new = {tuple(r) for r in _insert_returning(conn, table, key, rows, key)}
    return [row for row in rows if tuple(row[k] for k in key) in new]


def _pg_insert_unnest(
    conn: Connection,
    table: Table,
    key: list[str],
    rows: list[dict[str, Any]],
    returning: list[str],
) -> list[Any]:
    """PostgreSQL: one INSERT .. SELECT FROM unnest(arrays) .. ON CONFLICT DO NOTHING per
    table and batch.

    The statement text is the same for every batch, so psycopg parses and prepares it once;
    a multi-row VALUES list is new text each time and its parsing cost more than the insert.
    """
    quote = conn.dialect.identifier_preparer.quote
    cols = list(rows[0])
    sql, params = _pg_unnest_insert(conn, table, cols, rows, "p")
    sql += f" ON CONFLICT ({', '.join(quote(k) for k in key)}) DO NOTHING"
    sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
    return list(conn.execute(text(sql), params).all())


def _pg_unnest_insert(
    conn: Connection, table: Table, cols: list[str], rows: list[dict[str, Any]], prefix: str
) -> tuple[str, dict[str, list[Any]]]:
    """``INSERT INTO table (cols) SELECT .. FROM unnest(:arrays)`` and its array parameters."""
    quote = conn.dialect.identifier_preparer.quote
    params: dict[str, list[Any]] = {}
    arrays: list[str] = []
    selects: list[str] = []
    for i, name in enumerate(cols):
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            params[f"{prefix}{i}"] = [None if v is None else json.dumps(v) for v in values]
            arrays.append(f"CAST(:{prefix}{i} AS TEXT[])")
            selects.append(f"CAST(u.c{i} AS JSON)")
        else:
            params[f"{prefix}{i}"] = values
            sql_type = table.c[name].type.compile(dialect=conn.dialect)
            arrays.append(f"CAST(:{prefix}{i} AS {sql_type}[])")
            selects.append(f"u.c{i}")
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in cols)}) "
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) "
        f"AS u({', '.join(f'c{i}' for i in range(len(cols)))})"
    )
    return sql, params


@dataclass(frozen=True)
class _Stored:
    """A batch's document as the store holds it: a replay keeps the first event_at and kind."""

    id: int
    event_at: datetime
    kind: str


def _insert_documents(
    conn: Connection, rows: list[dict[str, Any]]
) -> tuple[dict[tuple[str, str], _Stored], set[int]]:
    """Inserts new documents; returns every key's stored document and the ids of new ones.

    Only documents stored before (a replay, a rescoring) are read back.
    """
    if not rows:
        return {}, set()
    new = _insert_returning(
        conn, DOCUMENTS, ["source", "external_id"], rows, ["id", "source", "external_id"]
    )
    new_ids = {(src, ext): id_ for id_, src, ext in new}
    stored: dict[tuple[str, str], _Stored] = {}
    missing: dict[str, list[str]] = {}
    for row in rows:
        key = (row["source"], row["external_id"])
        if key in new_ids:
            stored[key] = _Stored(new_ids[key], row["event_at"], row["kind"])
        else:
            missing.setdefault(row["source"], []).append(row["external_id"])
    for source, external_ids in missing.items():
        for i in range(0, len(external_ids), _KEY_CHUNK):
            chunk = external_ids[i : i + _KEY_CHUNK]
            found = conn.execute(
                select(
                    DOCUMENTS.c.id,
                    DOCUMENTS.c.external_id,
                    DOCUMENTS.c.event_at,
                    DOCUMENTS.c.kind,
                ).where(DOCUMENTS.c.source == source, DOCUMENTS.c.external_id.in_(chunk))
            )
            for id_, ext, event_at, kind in found:
                stored[(source, ext)] = _Stored(id_, event_at, kind)
    return stored, set(new_ids.values())


# --- hourly rollups ----------------------------------------------------------------------


def hour_of(ts: datetime) -> datetime:
    """The rollups' bucket: the start of the hour (naive UTC, as stored)."""
    return ts.replace(minute=0, second=0, microsecond=0)


def _add(
    sums: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], score: float, label: str
) -> None:
    acc = sums.setdefault(key, [0, 0.0, 0])
    acc[0] += 1
    acc[1] += score
    acc[2] += label == "negative"


def _add_to_rollups(
    conn: Connection,
    docs: dict[int, _Stored],
    new_docs: set[int],
    new_scores: list[dict[str, Any]],
    new_mentions: list[dict[str, Any]],
) -> None:
    """Adds what this batch really inserted to the three hourly rollups.

    documents_hourly counts new documents, sentiment_hourly new (document, score) pairs,
    ticker_hourly new (mention, score) pairs. A pair is new when its score or its mention
    is: a rescoring pairs the new score with the document's old mentions, a newly found
    ticker its mention with the old scores; those old rows are read from the store.
    """
    documents: dict[tuple[Any, ...], list[Any]] = {}
    for id_ in new_docs:
        d = docs[id_]
        documents.setdefault((hour_of(d.event_at), d.kind), [0])[0] += 1
    market: dict[tuple[Any, ...], list[Any]] = {}
    for s in new_scores:
        d = docs[s["document_id"]]
        _add(market, (s["model_version"], hour_of(d.event_at), d.kind), s["score"], s["label"])

    mentions_of: dict[int, list[tuple[str, datetime]]] = {}
    scores_of: dict[int, list[tuple[str, float, str]]] = {}
    for m in new_mentions:
        mentions_of.setdefault(m["document_id"], []).append((m["ticker"], m["event_at"]))
    for s in new_scores:
        scores_of.setdefault(s["document_id"], []).append(
            (s["model_version"], s["score"], s["label"])
        )
    # A new document's mentions and scores are all in this batch; an old one's are not.
    old = sorted((set(mentions_of) | set(scores_of)) - new_docs)
    if old:
        mentions_of, scores_of = _pairs_of_old_documents(conn, old, mentions_of, scores_of)
    new_mention_keys = {(m["document_id"], m["ticker"]) for m in new_mentions}
    new_score_keys = {(s["document_id"], s["model_version"]) for s in new_scores}
    tickers: dict[tuple[Any, ...], list[Any]] = {}
    for doc_id, doc_mentions in mentions_of.items():
        for ticker, event_at in doc_mentions:
            mention_is_new = doc_id in new_docs or (doc_id, ticker) in new_mention_keys
            for model_version, score, label in scores_of.get(doc_id, ()):
                if mention_is_new or (doc_id, model_version) in new_score_keys:
                    _add(tickers, (model_version, hour_of(event_at), ticker), score, label)

    counters = ["n", "sum_score", "n_negative"]
    _upsert_sums(
        conn,
        [
            (DOCUMENTS_HOURLY, ["bucket", "kind"], ["n"], documents),
            (SENTIMENT_HOURLY, ["model_version", "bucket", "kind"], counters, market),
            (TICKER_HOURLY, ["model_version", "bucket", "ticker"], counters, tickers),
        ],
    )


def _pairs_of_old_documents(
    conn: Connection,
    old: list[int],
    mentions_of: dict[int, list[tuple[str, datetime]]],
    scores_of: dict[int, list[tuple[str, float, str]]],
) -> tuple[dict[int, list[tuple[str, datetime]]], dict[int, list[tuple[str, float, str]]]]:
    """All stored mentions and scores of documents stored before this batch (this batch's
    new rows included).

    On PostgreSQL the documents are locked first (FOR NO KEY UPDATE, which inserts that
    reference them do not wait for): of two writers adding a mention and a score to the same
    document at once, the second to lock reads after the first committed and counts the pair
    the first could not see.
    """
    stored_before = set(old)
    mentions_of = {k: v for k, v in mentions_of.items() if k not in stored_before}
    scores_of = {k: v for k, v in scores_of.items() if k not in stored_before}
    for i in range(0, len(old), _KEY_CHUNK):
        chunk = old[i : i + _KEY_CHUNK]
        if conn.dialect.name == "postgresql":
            conn.execute(
                select(DOCUMENTS.c.id)
                .where(DOCUMENTS.c.id.in_(chunk))
                .order_by(DOCUMENTS.c.id)
                .with_for_update(key_share=True)
            ).all()
        found = conn.execute(
            select(MENTIONS.c.document_id, MENTIONS.c.ticker, MENTIONS.c.event_at).where(
                MENTIONS.c.document_id.in_(chunk)
            )
        )
        for doc_id, ticker, event_at in found:
            mentions_of.setdefault(doc_id, []).append((ticker, event_at))
        found = conn.execute(
            select(
                SCORES.c.document_id, SCORES.c.model_version, SCORES.c.score, SCORES.c.label
            ).where(SCORES.c.document_id.in_(chunk))
        )
        for doc_id, model_version, score, label in found:
            scores_of.setdefault(doc_id, []).append((model_version, score, label))
    return mentions_of, scores_of


Sums = tuple[Table, list[str], list[str], dict[tuple[Any, ...], list[Any]]]


def _upsert_sums(conn: Connection, plan: list[Sums]) -> None:
    """For each (table, key, counters, sums): INSERT .. ON CONFLICT (key) DO UPDATE SET
    counter = counter + excluded.counter.

    Rows go in sorted by key, tables always in the plan's order: concurrent PostgreSQL
    writers then lock the rows they share (the current hour's) in one order. PostgreSQL
    gets the three upserts as ONE statement of the same text every time (empty arrays for
    a table with nothing to add): one round trip, prepared once.
    """
    rows = {
        table.name: [
            dict(zip(key + counters, (*k, *sums[k]), strict=True)) for k in sorted(sums)
        ]
        for table, key, counters, sums in plan
    }
    if conn.dialect.name != "postgresql":
        for table, key, counters, _ in plan:
            if rows[table.name]:
                conn.execute(_sqlite_upsert(table, tuple(key), tuple(counters)), rows[table.name])
        return
    if not any(rows.values()):
        return
    quote = conn.dialect.identifier_preparer.quote
    statements: list[str] = []
    params: dict[str, list[Any]] = {}
    for i, (table, key, counters, _) in enumerate(plan):
        sql, table_params = _pg_unnest_insert(conn, table, key + counters, rows[table.name],
                                              f"t{i}_")
        target = quote(table.name)
        statements.append(
            f"{sql} ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET "
            + ", ".join(f"{quote(c)} = {target}.{quote(c)} + EXCLUDED.{quote(c)}" for c in counters)
        )
        params.update(table_params)
    *first, last = statements
    if first:
        last = "WITH " + ", ".join(f"u{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last
    conn.execute(text(last), params)


@cache
def _sqlite_upsert(table: Table, key: tuple[str, ...], counters: tuple[str, ...]) -> Any:
    """The SQLite upsert as text with typed parameters: unlike the dialect's ``insert()``,
    SQLAlchemy caches its compiled form, which halves the cost of a batch's upserts."""
    cols = [*key, *counters]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join(f':{c}' for c in cols)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in counters)
    )
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in cols))


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
