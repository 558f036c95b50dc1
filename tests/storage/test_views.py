"""The SQL views compute the right aggregates on a hand-made set, on both stores."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, select

from storage.models import Document
from storage.views import (
    latest_scores,
    market_sentiment_hour,
    ticker_sentiment_hour,
    ticker_sentiment_minute,
)
from storage.writes import save_batch
from tests.storage.factories import item

POS, NEG = 0.75, -0.75  # the factory's scores for positive / negative labels


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, second)


@pytest.fixture
def store(db_engine: Engine) -> Engine:
    save_batch(
        db_engine,
        [
            item("a1", event_at=at(10, 0, 10), tickers=("AAPL",), label="positive"),
            item("a2", event_at=at(10, 0, 50), tickers=("AAPL",), label="negative"),
            item(
                "both",
                event_at=at(10, 0, 30),
                tickers=("AAPL", "MSFT"),
                label="neutral",
                kind="comment",
            ),
            item("m1", event_at=at(10, 0, 20), tickers=("MSFT",), label="negative"),
            item("a3", event_at=at(10, 1, 5), tickers=("AAPL",), label="neutral"),
            item("a4", event_at=at(11, 30), tickers=("AAPL",), label="positive"),
            item("none", event_at=at(10, 5), tickers=(), label="negative"),
        ],
    )
    # A second model rescored a1 later: a separate series, and a1's newest score.
    save_batch(
        db_engine, [item("a1", event_at=at(10, 0, 10), label="negative", model_version="m2")]
    )
    return db_engine


def rows(engine: Engine, stmt) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def test_ticker_sentiment_per_minute(store: Engine) -> None:
    v = ticker_sentiment_minute
    got = rows(
        store,
        select(
            v.c.ticker, v.c.bucket, v.c.model_version, v.c.n, v.c.mean_score, v.c.negative_share
        ).order_by(v.c.model_version, v.c.ticker, v.c.bucket),
    )
    assert got == [
        ("AAPL", at(10, 0), "m1", 3, pytest.approx(0.0), pytest.approx(1 / 3)),
        ("AAPL", at(10, 1), "m1", 1, pytest.approx(0.0), pytest.approx(0.0)),
        ("AAPL", at(11, 30), "m1", 1, pytest.approx(POS), pytest.approx(0.0)),
        ("MSFT", at(10, 0), "m1", 2, pytest.approx(NEG / 2), pytest.approx(0.5)),
        ("AAPL", at(10, 0), "m2", 1, pytest.approx(NEG), pytest.approx(1.0)),
    ]
    assert all(isinstance(r[1], datetime) for r in got)


def test_ticker_sentiment_per_hour(store: Engine) -> None:
    v = ticker_sentiment_hour
    got = rows(
        store,
        select(v.c.ticker, v.c.bucket, v.c.n, v.c.mean_score, v.c.negative_share)
        .where(v.c.model_version == "m1")
        .order_by(v.c.ticker, v.c.bucket),
    )
    assert got == [
        ("AAPL", at(10, 0), 4, pytest.approx(0.0), pytest.approx(0.25)),
        ("AAPL", at(11, 0), 1, pytest.approx(POS), pytest.approx(0.0)),
        ("MSFT", at(10, 0), 2, pytest.approx(NEG / 2), pytest.approx(0.5)),
    ]


def test_bucket_filters_compare_as_times_on_both_stores(store: Engine) -> None:
    """On SQLite the bucket is text; it must compare right with a bound datetime."""
    v = ticker_sentiment_minute
    since = at(10, 1)
    got = rows(
        store,
        select(v.c.bucket)
        .where(v.c.ticker == "AAPL", v.c.model_version == "m1", v.c.bucket >= since)
        .order_by(v.c.bucket),
    )
    assert got == [(at(10, 1),), (at(11, 30),)]


def test_market_sentiment_per_hour_and_kind(store: Engine) -> None:
    v = market_sentiment_hour
    got = rows(
        store,
        select(v.c.bucket, v.c.kind, v.c.n, v.c.mean_score, v.c.negative_share)
        .where(v.c.model_version == "m1")
        .order_by(v.c.bucket, v.c.kind),
    )
    # 10:00 news: a1 +, a2 -, m1 -, a3 0, none -   10:00 comment: both 0   11:00 news: a4 +
    assert got == [
        (at(10, 0), "comment", 1, pytest.approx(0.0), pytest.approx(0.0)),
        (at(10, 0), "news", 5, pytest.approx((POS + 3 * NEG) / 5), pytest.approx(3 / 5)),
        (at(11, 0), "news", 1, pytest.approx(POS), pytest.approx(0.0)),
    ]


def test_latest_scores_has_one_row_per_document(store: Engine) -> None:
    v = latest_scores
    got = dict(rows(store, select(v.c.document_id, v.c.model_version)))
    assert len(got) == 7
    with store.connect() as conn:
        newest = conn.execute(
            select(v.c.model_version, v.c.label, v.c.score)
            .join(Document, Document.id == v.c.document_id)
            .where(Document.external_id == "a1")
        ).one()
    assert tuple(newest) == ("m2", "negative", pytest.approx(NEG))
    assert sorted(got.values()).count("m1") == 6
