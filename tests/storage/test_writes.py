"""save_batch and upsert_tickers on both stores: idempotent, atomic, and clear about bad input."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from storage.db import make_engine
from storage.exceptions import DatabaseUnavailable, InvalidDocument, StorageError
from storage.models import DeadLetter, Document, Mention, Score, Ticker
from storage.writes import BatchResult, MentionIn, ScoredDocument, save_batch, upsert_tickers
from tests.storage.factories import T0, dead_letter, item


def counts(engine: Engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Document, Score, Mention, DeadLetter)
        )


def test_save_batch_stores_everything_once(db_engine: Engine) -> None:
    batch = [item(f"d{i}", tickers=("AAPL", "MSFT")) for i in range(10)]
    result = save_batch(db_engine, batch, [dead_letter(1), dead_letter(2)])
    assert result == BatchResult(10, 10, 20, 2)
    assert counts(db_engine) == (10, 10, 20, 2)
    with Session(db_engine) as conn:
        row = conn.execute(
            select(Document, Score)
            .join(Score, Score.document_id == Document.id)
            .where(Document.external_id == "d3")
        ).one()
        doc, score = row
        assert (doc.source, doc.kind, doc.text, doc.event_at) == ("test", "news", "text of d3", T0)
        assert (score.model_version, score.label) == ("m1", "positive")
        assert math.isclose(score.score, 0.75)
        mentions = conn.execute(
            select(Mention.ticker, Mention.event_at).where(Mention.document_id == doc.id)
        ).all()
        assert sorted(mentions) == [("AAPL", T0), ("MSFT", T0)]
        dl = conn.execute(select(DeadLetter).where(DeadLetter.offset == 2)).scalar_one()
        assert (dl.raw, dl.key, dl.reason) == (b"\xff{not json", b"k", "bad json")


def test_replaying_a_batch_adds_no_rows(db_engine: Engine) -> None:
    batch = [item(f"d{i}") for i in range(50)]
    dead = [dead_letter(i) for i in range(5)]
    first = save_batch(db_engine, batch, dead)
    again = save_batch(db_engine, batch, dead)
    assert first == BatchResult(50, 50, 50, 5)
    assert again == BatchResult(0, 0, 0, 0)
    assert counts(db_engine) == (50, 50, 50, 5)


def test_overlapping_batches_store_only_the_new_part(db_engine: Engine) -> None:
    save_batch(db_engine, [item(f"d{i}") for i in range(0, 30)])
    result = save_batch(db_engine, [item(f"d{i}") for i in range(20, 40)])
    assert result == BatchResult(10, 10, 10, 0)
    assert counts(db_engine)[:3] == (40, 40, 40)


def test_duplicates_inside_one_batch_do_not_fail(db_engine: Engine) -> None:
    twice = item("same", tickers=("AAPL", "AAPL"))
    batch = [twice, twice, item("other"), replace(twice, mentions=[MentionIn("TSLA", "name")])]
    result = save_batch(db_engine, batch, [dead_letter(7), dead_letter(7)])
    # The first occurrence of a document wins; mentions of both copies are kept.
    assert result == BatchResult(2, 2, 3, 1)
    assert counts(db_engine) == (2, 2, 3, 1)


def test_same_external_id_from_two_sources_is_two_documents(db_engine: Engine) -> None:
    result = save_batch(db_engine, [item("42", source="reuters"), item("42", source="stocktwits")])
    assert result.documents_inserted == 2


def test_a_second_model_version_adds_scores_and_keeps_the_first(db_engine: Engine) -> None:
    save_batch(db_engine, [item(f"d{i}", label="positive") for i in range(5)])
    result = save_batch(
        db_engine, [item(f"d{i}", label="negative", model_version="m2") for i in range(5)]
    )
    assert result == BatchResult(0, 5, 0, 0)
    with db_engine.connect() as conn:
        per_model = dict(
            conn.execute(
                select(Score.model_version, func.count()).group_by(Score.model_version)
            ).all()
        )
        labels = set(conn.execute(select(Score.model_version, Score.label)).all())
    assert per_model == {"m1": 5, "m2": 5}
    assert labels == {("m1", "positive"), ("m2", "negative")}
    # Rescoring with m1 again changes nothing: history is never overwritten.
    again = save_batch(db_engine, [item(f"d{i}", label="negative") for i in range(5)])
    assert again == BatchResult(0, 0, 0, 0)


def test_times_are_stored_as_naive_utc(db_engine: Engine) -> None:
    new_york = timezone(timedelta(hours=-5))
    aware = datetime(2024, 3, 1, 5, 30, tzinfo=new_york)
    save_batch(db_engine, [item("tz", event_at=aware, published_at=aware)])
    with Session(db_engine) as conn:
        doc = conn.execute(select(Document)).scalar_one()
        mention_at = conn.execute(select(Mention.event_at)).scalar_one()
    expected = datetime(2024, 3, 1, 10, 30)
    assert doc.event_at == doc.published_at == mention_at == expected
    assert doc.event_at.tzinfo is None
    assert abs(doc.ingested_at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)


def test_extra_fields_and_kafka_position_round_trip(db_engine: Engine) -> None:
    extra = {"sentiment_hint": "bull", "nested": {"a": [1, 2, None]}, "ünïcode": "✓"}
    save_batch(
        db_engine,
        [item("x", extra=extra, kafka_topic="finsent.news", kafka_partition=3, kafka_offset=2**40)],
    )
    with Session(db_engine) as conn:
        doc = conn.execute(select(Document)).scalar_one()
    assert doc.extra == extra
    assert (doc.kafka_topic, doc.kafka_partition, doc.kafka_offset) == ("finsent.news", 3, 2**40)


def test_an_empty_batch_is_fine(db_engine: Engine) -> None:
    assert save_batch(db_engine, []) == BatchResult(0, 0, 0, 0)
    assert save_batch(db_engine, [], [dead_letter(1)]) == BatchResult(0, 0, 0, 1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (item("x", source="s" * 65), "source is longer than 64"),
        (item("x" * 257), "external_id is longer than 256"),
        (item("x", text="nul \x00 inside"), "text contains an unstorable character U\\+0000"),
        (item("x", title="lone \ud800 surrogate"), "title contains an unstorable character"),
        (item("x", tickers=("WAYTOOLONGTICKER1",)), "ticker is longer than 16"),
        (item("x", value=float("nan")), "score must be a finite number"),
        (item("x", value=1.5), "score must be a finite number in \\[-1, 1\\]"),
        (item("x", label="bullish"), "label must be one of negative, neutral, positive"),
        (item("x", extra={"when": datetime(2024, 1, 1)}), "extra is not storable as JSON"),
        (item("x", extra={"x": float("inf")}), "extra is not storable as JSON"),
        (item("x", extra={"k": "\udc80"}), "extra contains an unstorable character"),
        (item("x", author="a" * 257), "author is longer than 256"),
        (item("", source="s"), "external_id is empty"),
    ],
)
def test_unstorable_items_are_named_and_nothing_is_written(
    db_engine: Engine, bad: ScoredDocument, reason: str
) -> None:
    batch = [item("good-1"), bad, item("good-2")]
    with pytest.raises(InvalidDocument, match=reason) as info:
        save_batch(db_engine, batch, [dead_letter(1)])
    assert list(info.value.positions) == [1]
    assert counts(db_engine) == (0, 0, 0, 0)
    # The caller drops (dead-letters) the named items and saves the rest.
    rest = [it for i, it in enumerate(batch) if i not in info.value.reasons]
    assert save_batch(db_engine, rest).documents_inserted == 2


def test_dead_letters_are_never_refused(db_engine: Engine) -> None:
    """A dead letter is the last copy of a bad record: its text is made storable instead."""
    hostile = replace(
        dead_letter(9),
        topic="t" * 300,
        reason="bad \x00 byte and \udcff surrogate",
        key=None,
        raw=b"\x00" * 10,
    )
    assert save_batch(db_engine, [], [hostile]).dead_letters_inserted == 1
    with Session(db_engine) as conn:
        dl = conn.execute(select(DeadLetter)).scalar_one()
    assert dl.topic == "t" * 256
    assert dl.reason == "bad \ufffd byte and \ufffd surrogate"
    assert (dl.key, dl.raw) == (None, b"\x00" * 10)


def _failing_trigger(engine: Engine) -> None:
    """A real database error in the middle of the transaction: mentions of 'BOOM' abort."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON mentions WHEN NEW.ticker = 'BOOM' "
                    "BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.ticker = 'BOOM' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; "
                    "END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON mentions "
                    "FOR EACH ROW EXECUTE FUNCTION boom()"
                )
            )


def test_a_failure_mid_transaction_leaves_nothing_half_written(db_engine: Engine) -> None:
    _failing_trigger(db_engine)
    batch = [item("a"), item("b", tickers=("BOOM",)), item("c")]
    with pytest.raises(StorageError, match="saving a batch: .*boom") as info:
        save_batch(db_engine, batch, [dead_letter(1)])
    assert not isinstance(info.value, DatabaseUnavailable)  # not worth retrying
    assert isinstance(info.value.__cause__, Exception)
    assert counts(db_engine) == (0, 0, 0, 0)
    assert save_batch(db_engine, [item("a"), item("c")]).documents_inserted == 2


def test_a_locked_sqlite_store_is_reported_as_unavailable(sqlite_url: str) -> None:
    """Another writer holding the lock past busy_timeout: retryable, and nothing written."""
    path = sqlite_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    engine = make_engine(sqlite_url, busy_timeout_s=0.2)
    try:
        with pytest.raises(DatabaseUnavailable, match="locked"):
            save_batch(engine, [item("x")])
        other.execute("ROLLBACK")
        assert save_batch(engine, [item("x")]).documents_inserted == 1
    finally:
        other.close()
        engine.dispose()


def test_an_unreachable_postgres_is_reported_as_unavailable() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        with pytest.raises(DatabaseUnavailable, match="database unavailable"):
            save_batch(engine, [item("x")])
    finally:
        engine.dispose()


def test_upsert_tickers_inserts_then_updates(db_engine: Engine) -> None:
    rows = [
        {"symbol": "AAPL", "name": "Apple Inc.", "aliases": ["Apple", "Apple Inc"], "sector": "IT"},
        {"symbol": "MSFT", "name": "Microsoft", "aliases": None, "sector": None},
        {"symbol": "AAPL", "name": "Apple", "aliases": "Apple", "sector": "Tech"},  # last wins
    ]
    assert upsert_tickers(db_engine, rows) == 2
    assert upsert_tickers(db_engine, [{"symbol": "MSFT", "name": "Microsoft Corp."}]) == 1
    with Session(db_engine) as conn:
        got = {t.symbol: (t.name, t.aliases, t.sector) for t in conn.scalars(select(Ticker))}
    assert got == {
        "AAPL": ("Apple", "Apple", "Tech"),
        "MSFT": ("Microsoft Corp.", None, None),
    }


def test_upsert_tickers_refuses_bad_rows(db_engine: Engine) -> None:
    with pytest.raises(StorageError, match="ticker row 1 .*symbol is longer than 16"):
        upsert_tickers(db_engine, [{"symbol": "A", "name": "a"}, {"symbol": "X" * 17, "name": "x"}])
    with pytest.raises(StorageError, match="name is missing"):
        upsert_tickers(db_engine, [{"symbol": "A"}])
    assert upsert_tickers(db_engine, []) == 0


def _terminate_backends(pg_admin: Engine, url: str) -> int:
    from sqlalchemy.engine import make_url

    with pg_admin.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": make_url(url).database},
            ).all()
        )


@pytest.mark.postgres
def test_a_dropped_connection_mid_transaction_is_retryable(pg_admin, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """What a database restart looks like from inside a transaction: worth a retry."""
    from storage.db import wrap_error

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # inside a transaction now
            assert _terminate_backends(pg_admin, pg_url) >= 1
            with pytest.raises(Exception) as info:
                conn.execute(text("SELECT 1"))
        assert isinstance(wrap_error(info.value, "saving a batch"), DatabaseUnavailable)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_save_batch_recovers_after_the_server_drops_pooled_connections(
    pg_admin,
    pg_url: str,  # type: ignore[no-untyped-def]
) -> None:
    engine = make_engine(pg_url)
    try:
        assert save_batch(engine, [item("before")]).documents_inserted == 1
        assert _terminate_backends(pg_admin, pg_url) >= 1  # the pooled connection is dead
        assert save_batch(engine, [item("after")]).documents_inserted == 1
    finally:
        engine.dispose()
