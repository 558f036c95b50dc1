"""storage.queries on SQLite and PostgreSQL: the numbers the pages show, checked against
plain arithmetic over the seeded documents."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from storage import queries
from storage.db import make_engine
from tests.alerts.seeding import MODEL, SCENARIO_END, market_scenario, scored, seed
from tests.dashboard.conftest import seed_scenario

DAY = timedelta(days=1)


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Engine:
    engine = make_engine(db_url)
    seed_scenario(engine, tmp_path)
    yield engine  # type: ignore[misc]
    engine.dispose()


def docs_between(start: datetime, end: datetime) -> list:
    return [i for i in market_scenario() if start < i.document.event_at <= end]


def test_span_and_model_version(engine: Engine) -> None:
    oldest, newest = queries.data_span(engine)
    times = [i.document.event_at for i in market_scenario()]
    assert (oldest, newest) == (min(times), max(times))
    assert queries.current_model_version(engine) == MODEL


def test_market_index_is_the_mean_over_documents(engine: Engine) -> None:
    start, end = SCENARIO_END - DAY, SCENARIO_END
    rows = queries.market_index(engine, start, end, model_version=MODEL, bucket="hour")
    expected = docs_between(start, end)
    assert sum(r["n"] for r in rows) == len(expected)
    assert all(isinstance(r["bucket"], datetime) for r in rows)
    assert [r["bucket"] for r in rows] == sorted(r["bucket"] for r in rows)
    last = rows[-1]
    in_last = [i for i in expected if i.document.event_at >= last["bucket"]]
    assert last["n"] == len(in_last)
    assert last["mean_score"] == pytest.approx(sum(i.score.score for i in in_last) / len(in_last))
    neg = sum(1 for i in in_last if i.score.label == "negative") / len(in_last)
    assert last["neg_share"] == pytest.approx(neg)
    assert queries.market_index(engine, start, end, model_version="other", bucket="hour") == []


def test_one_scan_by_kind_gives_index_and_volume(engine: Engine) -> None:
    start, end = SCENARIO_END - DAY, SCENARIO_END
    by_kind = queries.market_by_kind(engine, start, end, model_version=MODEL, bucket="hour")
    index = queries.market_index(engine, start, end, model_version=MODEL, bucket="hour")
    folded = queries.index_from_kinds(by_kind)
    assert [r["bucket"] for r in folded] == [r["bucket"] for r in index]
    for a, b in zip(folded, index, strict=True):
        assert a["n"] == b["n"]
        assert a["mean_score"] == pytest.approx(b["mean_score"])
        assert a["neg_share"] == pytest.approx(b["neg_share"])
    volume = queries.volume_by_kind(engine, start, end, bucket="hour")
    assert [(r["bucket"], r["kind"], r["n"]) for r in by_kind] == [
        (r["bucket"], r["kind"], r["n"]) for r in volume
    ]


@pytest.mark.parametrize("bucket", ["minute", "hour", "day"])
def test_buckets_on_both_dialects(engine: Engine, bucket: str) -> None:
    start, end = SCENARIO_END - timedelta(hours=2), SCENARIO_END
    rows = queries.volume_by_kind(engine, start, end, bucket=bucket)  # type: ignore[arg-type]
    assert sum(r["n"] for r in rows) == len(docs_between(start, end))
    for r in rows:
        b = r["bucket"]
        assert b.second == 0 and b.microsecond == 0
        if bucket != "minute":
            assert b.minute == 0
        if bucket == "day":
            assert b.hour == 0
    assert {r["kind"] for r in rows} == {"news", "comment"}


def test_top_movers_finds_the_sell_off(engine: Engine) -> None:
    movers = queries.top_movers(
        engine, SCENARIO_END - timedelta(hours=3), SCENARIO_END, model_version=MODEL
    )
    assert movers[0]["ticker"] == "TSLA"
    assert movers[0]["change"] < -0.5
    assert movers[0]["change"] == pytest.approx(movers[0]["mean_score"] - movers[0]["prev_mean"])
    changes = [abs(m["change"]) for m in movers]
    assert changes == sorted(changes, reverse=True)


def test_top_movers_period_is_capped(engine: Engine) -> None:
    # a 3-day range capped at 1 day compares the last day with the day before
    capped = queries.top_movers(engine, SCENARIO_END - 3 * DAY, SCENARIO_END,
                                model_version=MODEL, max_period=DAY)
    day = queries.top_movers(engine, SCENARIO_END - DAY, SCENARIO_END, model_version=MODEL)
    assert capped == day
    wide = queries.top_movers(engine, SCENARIO_END - 3 * DAY, SCENARIO_END, model_version=MODEL)
    assert wide == []  # uncapped: the 3 days before the data are empty, nothing to compare


def test_ticker_timeline_activity_and_documents(engine: Engine) -> None:
    start, end = SCENARIO_END - DAY, SCENARIO_END
    tsla = [i for i in docs_between(start, end) if i.mentions[0].ticker == "TSLA"]
    timeline = queries.ticker_timeline(
        engine, "TSLA", start, end, model_version=MODEL, bucket="hour"
    )
    assert sum(r["n"] for r in timeline) == len(tsla)
    activity = queries.ticker_activity(engine, start, end)
    assert activity[0] == {"ticker": "TSLA", "n": len(tsla)}
    # the long-range path (mentions index only) agrees with the short one (via documents)
    assert queries.ticker_activity(engine, end - 30 * DAY, end) == queries.ticker_activity(
        engine, end - 4 * DAY, end
    )

    newest = queries.latest_documents(engine, start, end, model_version=MODEL, ticker="TSLA",
                                      limit=5)
    assert [d["event_at"] for d in newest] == sorted(
        (i.document.event_at for i in tsla), reverse=True
    )[:5]
    worst = queries.latest_documents(engine, start, end, model_version=MODEL, ticker="TSLA",
                                     most_negative=True, limit=5)
    assert [d["score"] for d in worst] == sorted(i.score.score for i in tsla)[:5]
    assert all(d["tickers"] == "TSLA" for d in worst)


def test_live_feed_newest_first_with_all_tickers(engine: Engine) -> None:
    seed(engine, [scored("multi", SCENARIO_END + timedelta(minutes=1), 0.3,
                         tickers=("AAPL", "MSFT"))])
    feed = queries.live_feed(engine, limit=3)
    assert feed[0]["text"].startswith("AAPL MSFT post multi")
    assert feed[0]["tickers"] == "AAPL, MSFT"
    assert len(feed) == 3


def test_alerts_acknowledge_and_evidence(engine: Engine) -> None:
    open_alerts = queries.list_alerts(engine, status="open")
    assert {a["rule_name"] for a in open_alerts} == {
        "ticker-sentiment-drop", "ticker-negative-share", "ticker-volume-spike"
    }
    first = open_alerts[0]
    assert queries.acknowledge_alert(engine, first["id"]) is True
    assert queries.acknowledge_alert(engine, first["id"]) is False  # already seen
    assert queries.acknowledge_alert(engine, 10_000) is False
    evidence = queries.documents_by_ids(engine, first["evidence"])
    assert [d["id"] for d in evidence] == first["evidence"]
    assert queries.newest_alert_id(engine) == max(a["id"] for a in open_alerts)


def test_prices_and_schema(engine: Engine) -> None:
    prices = queries.price_series(engine, "TSLA", date(2015, 6, 1), date(2015, 6, 5))
    assert [p["day"] for p in prices] == [date(2015, 6, d) for d in range(1, 6)]
    listing = {item["name"]: item for item in queries.schema_listing(engine)}
    assert listing["documents"]["type"] == "table"
    assert listing["latest_scores"]["type"] == "view"
    assert "event_at" in [c["column"] for c in listing["documents"]["columns"]]
    assert "alembic_version" not in listing
