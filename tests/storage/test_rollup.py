"""The hourly rollups on both stores: always equal to a GROUP BY over the raw tables, through
random batches with replays, in-batch duplicates, rescorings and late tickers; rebuilt by the
migration's backfill; and the queries that read them agree with the raw rows."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, case, func, select

from storage import queries
from storage.db import head_revision, make_engine, upgrade
from storage.exceptions import DatabaseUnavailable
from storage.models import DocumentsHourly, SentimentHourly, TickerHourly
from storage.queries import D, M, S
from storage.writes import MentionIn, ScoredDocument, save_batch
from tests.storage.factories import item

T0 = datetime(2024, 3, 1, 0, 0, 0)
TICKERS = ("AAPL", "MSFT", "TSLA", "XOM")
LABELS = ("negative", "neutral", "positive")
DH, SH, TH = DocumentsHourly.__table__, SentimentHourly.__table__, TickerHourly.__table__

State = dict[str, dict[tuple[Any, ...], tuple[int, float, int]]]


# --- the two sides of the comparison ------------------------------------------------------


def rollup_state(engine: Engine) -> State:
    """The three rollup tables as {key: (n, sum_score, n_negative)}."""
    with engine.connect() as conn:
        return {
            "documents": {
                (r.bucket, r.kind): (r.n, 0.0, 0) for r in conn.execute(select(DH))
            },
            "market": {
                (r.model_version, r.bucket, r.kind): (r.n, r.sum_score, r.n_negative)
                for r in conn.execute(select(SH))
            },
            "tickers": {
                (r.model_version, r.bucket, r.ticker): (r.n, r.sum_score, r.n_negative)
                for r in conn.execute(select(TH))
            },
        }


def raw_state(engine: Engine) -> State:
    """The same aggregates grouped in SQL over documents, scores and mentions."""
    neg = func.sum(case((S.c.label == "negative", 1), else_=0))
    with engine.connect() as conn:
        doc_hour = queries.bucket_expr(conn, D.c.event_at, "hour")
        mention_hour = queries.bucket_expr(conn, M.c.event_at, "hour")
        documents = conn.execute(
            select(doc_hour, D.c.kind, func.count()).group_by(doc_hour, D.c.kind)
        )
        market = conn.execute(
            select(S.c.model_version, doc_hour, D.c.kind, func.count(), func.sum(S.c.score), neg)
            .select_from(D.join(S, S.c.document_id == D.c.id))
            .group_by(S.c.model_version, doc_hour, D.c.kind)
        )
        tickers = conn.execute(
            select(S.c.model_version, mention_hour, M.c.ticker, func.count(),
                   func.sum(S.c.score), neg)
            .select_from(M.join(S, S.c.document_id == M.c.document_id))
            .group_by(S.c.model_version, mention_hour, M.c.ticker)
        )
        return {
            "documents": {
                (queries.as_datetime(b), kind): (n, 0.0, 0) for b, kind, n in documents
            },
            "market": {
                (mv, queries.as_datetime(b), kind): (n, total, int(negs))
                for mv, b, kind, n, total, negs in market
            },
            "tickers": {
                (mv, queries.as_datetime(b), ticker): (n, total, int(negs))
                for mv, b, ticker, n, total, negs in tickers
            },
        }


def assert_same(actual: State, expected: State) -> None:
    for table in expected:
        assert actual[table].keys() == expected[table].keys(), table
        for key, (n, total, negs) in expected[table].items():
            got = actual[table][key]
            assert (got[0], got[2]) == (n, negs), (table, key)
            assert math.isclose(got[1], total, abs_tol=1e-9), (table, key)


# --- random traffic -----------------------------------------------------------------------


def random_time(rng: random.Random) -> datetime:
    """Within two days; one in five exactly on an hour, the rollups' boundary."""
    hours = rng.randrange(48)
    if rng.random() < 0.2:
        return T0 + timedelta(hours=hours)
    within = timedelta(seconds=rng.randrange(3600), microseconds=rng.randrange(10**6))
    return T0 + timedelta(hours=hours) + within


def random_item(rng: random.Random, pool: list[ScoredDocument]) -> ScoredDocument:
    """A new document, or one of the pool again: replayed as is, rescored by another model,
    with a ticker found late, or sent again with another time and kind (the store keeps
    the first)."""
    roll = rng.random()
    if pool and roll < 0.5:
        old = rng.choice(pool)
        if roll < 0.2:
            return old
        if roll < 0.3:
            label = rng.choice(LABELS)
            return replace(old, score=item("x", model_version="m2", label=label,
                                           value=rng.uniform(-1, 1)).score)
        if roll < 0.4:
            extra = MentionIn(ticker=rng.choice(TICKERS), how="name")
            return replace(old, mentions=[*old.mentions, extra])
        doc = replace(old.document, event_at=random_time(rng), kind="comment")
        return replace(old, document=doc)
    new = item(
        f"d{rng.randrange(10**9)}",
        kind=rng.choice(("news", "comment")),
        event_at=random_time(rng),
        tickers=tuple(rng.sample(TICKERS, rng.choice((0, 1, 1, 2)))),
        label=rng.choice(LABELS),
        model_version=rng.choice(("m1", "m1", "m2")),
        value=round(rng.uniform(-1, 1), 6),
    )
    pool.append(new)
    return new


def random_batches(seed: int, n_batches: int, size: int) -> list[list[ScoredDocument]]:
    rng = random.Random(seed)
    pool: list[ScoredDocument] = []
    batches = []
    for _ in range(n_batches):
        batch = [random_item(rng, pool) for _ in range(rng.randrange(1, size))]
        if batch and rng.random() < 0.5:  # duplicates inside one batch: the first wins
            batch += rng.sample(batch, min(3, len(batch)))
            rng.shuffle(batch)
        batches.append(batch)
    return batches


# --- tests --------------------------------------------------------------------------------


def test_rollups_equal_a_group_by_after_random_batches(db_engine: Engine) -> None:
    batches = random_batches(seed=7, n_batches=25, size=30)
    for i, batch in enumerate(batches):
        save_batch(db_engine, batch)
        if i % 5 == 4:
            assert_same(rollup_state(db_engine), raw_state(db_engine))
    state = rollup_state(db_engine)
    assert_same(state, raw_state(db_engine))
    assert state["tickers"] and {key[0] for key in state["market"]} == {"m1", "m2"}

    # at-least-once delivery: everything again, in another order, changes nothing
    for batch in reversed(batches):
        save_batch(db_engine, batch)
    assert_same(rollup_state(db_engine), state)


def test_rescoring_and_a_late_ticker_add_exactly_the_new_pairs(db_engine: Engine) -> None:
    at = T0 + timedelta(hours=5, minutes=10)
    first = item("a", event_at=at, tickers=("AAPL",), label="negative", value=-0.5)
    save_batch(db_engine, [first])
    # the same document: scored by m2, with MSFT found too, and a later time (ignored)
    again = item("a", event_at=at + timedelta(hours=3), tickers=("AAPL", "MSFT"),
                 model_version="m2", label="positive", value=0.25)
    save_batch(db_engine, [again])
    hour = T0 + timedelta(hours=5)
    state = rollup_state(db_engine)
    assert state["documents"] == {(hour, "news"): (1, 0.0, 0)}
    assert state["market"] == {
        ("m1", hour, "news"): (1, -0.5, 1),
        ("m2", hour, "news"): (1, 0.25, 0),
    }
    assert state["tickers"] == {
        ("m1", hour, "AAPL"): (1, -0.5, 1),
        ("m1", hour, "MSFT"): (1, -0.5, 1),  # the new mention with the old score
        ("m2", hour, "AAPL"): (1, 0.25, 0),  # the new score with the old mention
        ("m2", hour, "MSFT"): (1, 0.25, 0),
    }
    assert_same(state, raw_state(db_engine))
    with db_engine.connect() as conn:  # the late mention has the stored document's time
        assert set(conn.execute(select(M.c.event_at)).scalars()) == {at}


def test_the_migration_backfills_what_is_stored(db_url: str) -> None:
    from alembic import command

    from storage.db import _alembic_config

    engine = make_engine(db_url)
    try:
        for batch in random_batches(seed=11, n_batches=15, size=40):
            save_batch(engine, batch)
        kept = rollup_state(engine)
        with engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        upgrade(db_url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == (
                head_revision()
            )
        rebuilt = rollup_state(engine)
        assert_same(rebuilt, kept)
        assert_same(rebuilt, raw_state(engine))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_writers_keep_the_rollups_exact(pg_url: str) -> None:
    """Four writers at once on overlapping documents (replays, rescorings, late tickers)."""
    engine = make_engine(pg_url)
    batches = random_batches(seed=3, n_batches=24, size=25)
    errors: list[BaseException] = []

    def write(mine: list[list[ScoredDocument]]) -> None:
        try:
            for batch in mine:
                for _ in range(20):  # a deadlock between writers is retried, as the worker does
                    try:
                        save_batch(engine, batch)
                        break
                    except DatabaseUnavailable:
                        continue
                else:
                    raise AssertionError("a batch failed 20 times")
        except BaseException as e:  # surfaced below
            errors.append(e)

    try:
        threads = [threading.Thread(target=write, args=(batches[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert_same(rollup_state(engine), raw_state(engine))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_writer_waits_for_another_adding_to_the_same_document(pg_url: str) -> None:
    """Writer A adds a ticker to a stored document, writer B a new model's score, both at
    once: the pair (new ticker, new score) is seen by neither insert alone. A is held open
    inside its transaction (its rollup increments done, not committed); B must wait for it
    on the document's lock, then read A's mention and count that pair."""
    from storage import writes

    engine = make_engine(pg_url)
    at = T0 + timedelta(minutes=30)
    save_batch(engine, [item("x", event_at=at, tickers=("AAPL",), value=0.5)])
    b_done = threading.Event()
    b_errors: list[BaseException] = []

    def writer_b() -> None:
        try:
            save_batch(engine, [item("x", event_at=at, model_version="m2", value=-0.25)])
        except BaseException as e:  # surfaced below
            b_errors.append(e)
        finally:
            b_done.set()

    try:
        with engine.connect() as conn_a, engine.connect() as watch:
            trans = conn_a.begin()
            late = item("x", event_at=at, tickers=("AAPL", "MSFT"))
            row = writes._document_row(late.document, T0)
            stored, new_docs = writes._insert_documents(conn_a, [row])
            doc = stored[("test", "x")]
            mention = {"document_id": doc.id, "ticker": "MSFT", "event_at": at, "how": "name"}
            new = writes._insert_new(conn_a, writes.MENTIONS, ["document_id", "ticker"], [mention])
            writes._add_to_rollups(conn_a, {doc.id: doc}, new_docs, [], new)
            b = threading.Thread(target=writer_b)
            b.start()
            for _ in range(600):  # until B waits on a lock, or (without the lock) is done
                waiting = watch.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).scalar()
                watch.rollback()
                if waiting or b_done.wait(0.05):
                    break
            trans.commit()
        b.join(60)
        assert b_errors == []
        state = rollup_state(engine)
        hour = T0
        assert state["tickers"][("m2", hour, "MSFT")] == (1, -0.25, 0)
        assert_same(state, raw_state(engine))
    finally:
        engine.dispose()


# --- the queries on the rollups against the raw rows ----------------------------------------


def _truncate(ts: datetime, bucket: str) -> datetime:
    ts = ts.replace(second=0, microsecond=0)
    if bucket != "minute":
        ts = ts.replace(minute=0)
    return ts.replace(hour=0) if bucket == "day" else ts


def _raw_rows(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        scored = conn.execute(
            select(D.c.id, D.c.event_at, D.c.kind, S.c.model_version, S.c.score, S.c.label)
            .select_from(D.join(S, S.c.document_id == D.c.id))
        ).all()
        mentions = conn.execute(select(M.c.document_id, M.c.ticker, M.c.event_at)).all()
    return scored, mentions


def _sums(rows: list[tuple[tuple[Any, ...], float, str]]) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = {}
    for key, score, label in rows:
        acc = out.setdefault(key, [0, 0.0, 0])
        acc[0] += 1
        acc[1] += score
        acc[2] += label == "negative"
    return out


def _ranges(rng: random.Random, times: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Unaligned ranges, ranges on hour boundaries, on stored times, and under an hour."""
    hour = timedelta(hours=1)
    out = [
        (T0 - hour, T0 + 49 * hour),
        (T0 + 3 * hour, T0 + 20 * hour),
        (T0 + 3 * hour, T0 + 20 * hour - timedelta(microseconds=1)),
        (T0 + 2 * hour + timedelta(minutes=59), T0 + 3 * hour + timedelta(minutes=1)),
        (T0 + 5 * hour + timedelta(minutes=5), T0 + 5 * hour + timedelta(minutes=50)),
    ]
    for _ in range(6):
        a, b = sorted(rng.sample(times, 2))
        out.append((a, b))
        out.append((a - timedelta(minutes=rng.randrange(1, 200)), b + timedelta(seconds=37)))
    return out


@pytest.fixture
def traffic(db_engine: Engine) -> Engine:
    for batch in random_batches(seed=5, n_batches=20, size=60):
        save_batch(db_engine, batch)
    return db_engine


def test_queries_on_rollups_agree_with_the_raw_rows(traffic: Engine) -> None:
    engine = traffic
    scored, mentions = _raw_rows(engine)
    rng = random.Random(1)
    times = sorted({r.event_at for r in scored})
    by_doc = {(r.id, r.model_version): r for r in scored}
    checked = 0
    for start, end in _ranges(rng, times):
        in_range = [r for r in scored if start < r.event_at <= end]
        for bucket in ("minute", "hour", "day"):
            # market_by_kind and the market index
            expected = _sums([
                ((_truncate(r.event_at, bucket), r.kind), r.score, r.label)
                for r in in_range if r.model_version == "m1"
            ])
            got = queries.market_by_kind(engine, start, end, model_version="m1",
                                         bucket=bucket)  # type: ignore[arg-type]
            assert [(r["bucket"], r["kind"]) for r in got] == sorted(expected)
            for r in got:
                n, total, negs = expected[(r["bucket"], r["kind"])]
                assert (r["n"], r["negatives"]) == (n, negs)
                assert type(r["n"]) is int and type(r["negatives"]) is int
                assert math.isclose(r["score_sum"], total, abs_tol=1e-9)
            index = queries.market_index(engine, start, end, model_version="m1",
                                         bucket=bucket)  # type: ignore[arg-type]
            assert [r["n"] for r in index] == [
                sum(v[0] for k, v in expected.items() if k[0] == b)
                for b in sorted({k[0] for k in expected})
            ]
            # volume: every document, scored by any model or not
            kinds: dict[tuple[Any, ...], int] = {}
            for r in {r.id: r for r in in_range}.values():
                key = (_truncate(r.event_at, bucket), r.kind)
                kinds[key] = kinds.get(key, 0) + 1
            volume = queries.volume_by_kind(engine, start, end,
                                            bucket=bucket)  # type: ignore[arg-type]
            assert [(r["bucket"], r["kind"], r["n"]) for r in volume] == [
                (*k, kinds[k]) for k in sorted(kinds)
            ]
            # one ticker's timeline
            for ticker in ("AAPL", "XOM"):
                expected_t = _sums([
                    ((_truncate(at, bucket),), by_doc[(doc, "m1")].score,
                     by_doc[(doc, "m1")].label)
                    for doc, t, at in mentions
                    if t == ticker and start < at <= end and (doc, "m1") in by_doc
                ])
                timeline = queries.ticker_timeline(engine, ticker, start, end, model_version="m1",
                                                   bucket=bucket)  # type: ignore[arg-type]
                assert [(r["bucket"],) for r in timeline] == sorted(expected_t)
                for r in timeline:
                    n, total, negs = expected_t[(r["bucket"],)]
                    assert r["n"] == n
                    assert math.isclose(r["mean_score"], total / n, abs_tol=1e-9)
                    assert math.isclose(r["neg_share"], negs / n, abs_tol=1e-12)
                checked += len(timeline)
        movers = queries.top_movers(engine, start, end, model_version="m2", min_count=1,
                                    limit=100)
        assert movers == _expected_movers(scored, mentions, start, end, "m2")
    assert checked > 100


def _expected_movers(
    scored: list[Any], mentions: list[Any], start: datetime, end: datetime, mv: str
) -> list[dict[str, Any]]:
    period = min(end - start, queries.MOVERS_MAX_PERIOD)
    start = end - period
    by_doc = {r.id: r for r in scored if r.model_version == mv}
    now: dict[str, list[float]] = {}
    before: dict[str, list[float]] = {}
    for doc, ticker, _ in mentions:
        r = by_doc.get(doc)
        if r is None:
            continue
        if start < r.event_at <= end:
            now.setdefault(ticker, []).append(r.score)
        elif start - period < r.event_at <= start:
            before.setdefault(ticker, []).append(r.score)
    out = []
    for ticker in sorted(now.keys() & before.keys()):
        mean, prev = sum(now[ticker]) / len(now[ticker]), sum(before[ticker]) / len(before[ticker])
        out.append({"ticker": ticker, "n": len(now[ticker]), "mean_score": mean,
                    "prev_n": len(before[ticker]), "prev_mean": prev, "change": mean - prev})
    out.sort(key=lambda r: abs(r["change"]), reverse=True)
    return [_approx(r) for r in out]


def _approx(row: dict[str, Any]) -> dict[str, Any]:
    return {k: pytest.approx(v, abs=1e-9) if isinstance(v, float) else v for k, v in row.items()}


def test_whole_hours_leave_only_partial_hours_to_the_raw_tables() -> None:
    at: Callable[..., datetime] = lambda h, m=0, us=0: T0 + timedelta(  # noqa: E731
        hours=h, minutes=m, microseconds=us
    )
    assert queries.whole_hours(at(1, 30), at(5, 10)) == (at(2), at(5))
    # start is excluded: an event exactly at start is not in the range, so its hour is partial
    assert queries.whole_hours(at(1), at(5)) == (at(2), at(5))
    assert queries.whole_hours(at(1, 30), at(2, 50)) is None
    assert queries.whole_hours(at(1, 30), at(3, 0, -1)) is None
    assert queries.whole_hours(at(1), at(3, 0, 5)) == (at(2), at(3))
