"""The alert engine on a real SQLite store seeded through save_batch."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from alerts import rules as rule_ops
from alerts.defaults import default_rules, install_default_rules
from alerts.engine import evaluate_rules, load_state
from alerts.events import AlertEvent
from alerts.rules import validate_rule
from alerts.windows import series_stats
from storage import queries
from storage.db import make_engine
from storage.queries import A, R
from tests.alerts.seeding import scored, seed

T0 = datetime(2015, 6, 1, 15, 0, 0)


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def add_rule(engine: Engine, **kw: object) -> int:
    fields: dict[str, object] = {
        "name": "drop",
        "kind": "mean_below",
        "scope": "ticker",
        "threshold": -0.3,
        "resolve_threshold": -0.1,
        "window_s": 3600,
        "min_count": 5,
        "for_s": 0,
        "cooldown_s": 0,
    }
    fields.update(kw)
    return rule_ops.add_rule(engine, validate_rule(**fields))


def alerts(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(A).order_by(A.c.id)).mappings()]


class Recorder:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def notify(self, events: list[AlertEvent]) -> None:
        self.events.extend(events)


def test_empty_store_evaluates_to_nothing(store: tuple[str, Engine]) -> None:
    _, engine = store
    assert evaluate_rules(engine) == []
    install_default_rules(engine)
    assert evaluate_rules(engine) == []
    assert alerts(engine) == []


def test_an_evaluation_of_an_empty_store_does_not_block_a_later_replay(
    store: tuple[str, Engine],
) -> None:
    _, engine = store
    add_rule(engine)
    assert evaluate_rules(engine) == []  # workers evaluate before the first batch lands
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(6)])  # 2015 data
    assert [e.event for e in evaluate_rules(engine)] == ["opened"]


def test_opens_on_data_time_then_resolves_when_sentiment_recovers(
    store: tuple[str, Engine],
) -> None:
    _, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(-50 + i * 5), -0.6 - i * 0.02) for i in range(8)])
    seed(engine, [scored("other", minutes(-5), -0.9, tickers=("MSFT",))])  # 1 doc: too few
    recorder = Recorder()
    events = evaluate_rules(engine, notifier=recorder)  # now = newest event_at (2015)
    assert [(e.event, e.ticker) for e in events] == [("opened", "AAPL")]
    assert recorder.events == events
    [row] = alerts(engine)
    assert row["status"] == "open" and row["ticker"] == "AAPL"
    assert row["opened_at"] == minutes(-5)  # the newest document (MSFT) sets data time
    assert row["value"] == pytest.approx(sum(-0.6 - i * 0.02 for i in range(8)) / 8)
    # evidence: the window's most negative documents first
    docs = queries.documents_by_ids(engine, row["evidence"])
    assert [d["score"] for d in docs] == sorted(d["score"] for d in docs)
    assert docs[0]["score"] == pytest.approx(-0.74)

    # sentiment recovers: an hour of positive posts pushes the bad ones out of the window
    seed(engine, [scored(f"p{i}", minutes(i * 6), 0.5) for i in range(1, 11)])
    events = evaluate_rules(engine)
    assert [(e.event, e.ticker) for e in events] == [("resolved", "AAPL")]
    [row] = alerts(engine)
    assert row["status"] == "resolved" and row["resolved_at"] == minutes(60)
    assert row["last_value"] == pytest.approx(0.5)


def test_repeated_evaluations_never_duplicate_an_open_alert(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(10)])
    opened = [e for _ in range(3) for e in evaluate_rules(engine)]
    assert len(opened) == 1
    seed(engine, [scored("n-more", minutes(11), -0.2)])
    assert evaluate_rules(engine) == []  # still bad: updated, not reopened
    [row] = alerts(engine)
    assert row["last_value"] == pytest.approx((10 * -0.8 - 0.2) / 11)


def test_concurrent_evaluators_open_one_alert(store: tuple[str, Engine]) -> None:
    url, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(10)])
    engines = [make_engine(url) for _ in range(4)]
    results: list[list[AlertEvent]] = []
    barrier = threading.Barrier(len(engines))

    def evaluate(e: Engine) -> None:
        barrier.wait()
        results.append(evaluate_rules(e))

    threads = [threading.Thread(target=evaluate, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert sum(len(r) for r in results) == 1
    assert len(alerts(engine)) == 1


def test_for_delay_is_remembered_in_rule_state(store: tuple[str, Engine]) -> None:
    _, engine = store
    rule_id = add_rule(engine, for_s=300)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(6)])
    assert evaluate_rules(engine, now=minutes(5)) == []
    with engine.connect() as conn:
        state = conn.execute(select(R.c.state).where(R.c.id == rule_id)).scalar()
    evaluated_at, series = load_state(state)
    assert evaluated_at == minutes(5)
    assert series["AAPL"].pending_since == minutes(5)
    assert evaluate_rules(engine, now=minutes(9)) == []
    events = evaluate_rules(engine, now=minutes(10))
    assert [e.event for e in events] == ["opened"]
    assert alerts(engine)[0]["opened_at"] == minutes(10)


def test_evaluation_older_than_the_last_one_is_skipped(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(6)])
    assert evaluate_rules(engine, now=minutes(30)) != []
    seed(engine, [scored(f"p{i}", minutes(31 + i), 0.9) for i in range(30)])
    assert evaluate_rules(engine, now=minutes(20)) == []  # stale: a newer one already ran
    assert alerts(engine)[0]["status"] == "open"


def test_cooldown_after_resolve_blocks_a_quick_reopen(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine, window_s=600, cooldown_s=1800)
    seed(engine, [scored(f"a{i}", minutes(i), -0.8) for i in range(6)])
    assert [e.event for e in evaluate_rules(engine)] == ["opened"]
    seed(engine, [scored(f"b{i}", minutes(20 + i), 0.6) for i in range(6)])
    assert [e.event for e in evaluate_rules(engine)] == ["resolved"]
    seed(engine, [scored(f"c{i}", minutes(40 + i), -0.8) for i in range(6)])
    assert evaluate_rules(engine) == []  # 20 min after the resolve: cooling down
    seed(engine, [scored(f"d{i}", minutes(56 + i), -0.8) for i in range(6)])
    assert [e.event for e in evaluate_rules(engine)] == ["opened"]  # 36 min after
    assert [a["status"] for a in alerts(engine)] == ["resolved", "open"]


def test_window_edges_in_the_store(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine, min_count=1)
    seed(
        engine,
        [
            scored("edge-start", minutes(-60), -1.0),  # exactly window start: excluded
            scored("inside", minutes(-59), -0.5),
            scored("edge-end", minutes(0), -0.1),  # exactly now: included
            scored("future", minutes(1), -1.0),  # after now: excluded
        ],
    )
    rule = queries.get_rule(engine, "drop")
    with engine.connect() as conn:
        stats = series_stats(conn, rule, minutes(0), "test-model-v1", None)
    assert stats["AAPL"].count == 2
    assert stats["AAPL"].value == pytest.approx(-0.3)


def test_now_is_capped_at_the_wall_clock(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine)
    future = datetime.now() + timedelta(days=400)
    seed(engine, [scored(f"f{i}", future + timedelta(minutes=i), -0.9) for i in range(6)])
    # a future-dated burst is not 'now': its window lies ahead of the clock, nothing fires
    assert evaluate_rules(engine) == []


def test_scopes_kind_market_and_one_ticker(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine, name="news-drop", scope="kind", target="news")
    add_rule(engine, name="each-kind", scope="kind", target=None, kind="mean_above",
             threshold=0.3, resolve_threshold=0.1)
    add_rule(engine, name="market", scope="market", min_count=10)
    add_rule(engine, name="msft-only", target="MSFT")
    seed(engine, [scored(f"news{i}", minutes(i), -0.7, kind="news") for i in range(6)])
    seed(engine, [scored(f"c{i}", minutes(i), 0.6, kind="comment", tickers=("MSFT",))
                  for i in range(6)])
    opened = sorted((e.rule_name, e.ticker) for e in evaluate_rules(engine))
    # market: 6 x -0.7 and 6 x +0.6 average -0.05, no alert; MSFT is positive, no alert
    assert opened == [("each-kind", "comment"), ("news-drop", "news")]


def test_only_the_current_model_version_counts(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(6)])
    # a newer model rescored the same documents as neutral
    seed(engine, [scored(f"n{i}", minutes(i), 0.0, model_version="v2") for i in range(6)])
    assert evaluate_rules(engine) == []
    assert [e.event for e in evaluate_rules(engine, model_version="test-model-v1")] == ["opened"]


def test_volume_spike_against_the_tickers_own_baseline(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine, name="spike", kind="volume_z", threshold=3.0, resolve_threshold=1.5,
             min_count=10)
    hours_back = 12
    base = [
        scored(f"b{h}-{j}", T0 - timedelta(hours=h, minutes=10 + 20 * j), 0.1)
        for h in range(1, hours_back + 1)
        for j in range(2 + h % 2)  # 2 or 3 posts an hour
    ]
    seed(engine, base)
    assert evaluate_rules(engine, now=T0 - timedelta(minutes=1)) == []
    seed(engine, [scored(f"s{i}", T0 - timedelta(minutes=i), 0.1) for i in range(15)])
    events = evaluate_rules(engine, now=T0)
    assert [(e.event, e.ticker) for e in events] == [("opened", "AAPL")]
    # baseline: the 11 whole hours after the first document, 3 or 2 posts each (std < 1,
    # floored at 1); current hour 15 posts
    assert events[0].value == pytest.approx(15 - 28 / 11)


def test_volume_spike_needs_observed_history(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine, name="spike", kind="volume_z", threshold=3.0, min_count=10)
    # a replay's very first hour: a burst with no past to compare with
    seed(engine, [scored(f"s{i}", T0 - timedelta(minutes=i), 0.1) for i in range(30)])
    assert evaluate_rules(engine, now=T0) == []


def test_disabled_rules_are_skipped_and_disabling_resolves(store: tuple[str, Engine]) -> None:
    _, engine = store
    add_rule(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.8) for i in range(6)])
    assert len(evaluate_rules(engine)) == 1
    assert rule_ops.set_rule_enabled(engine, "drop", False) == 1
    assert alerts(engine)[0]["status"] == "resolved"
    assert evaluate_rules(engine) == []
    rule_ops.set_rule_enabled(engine, "drop", True)
    assert [e.event for e in evaluate_rules(engine)] == ["opened"]


def test_default_rules_install_once(store: tuple[str, Engine]) -> None:
    _, engine = store
    assert install_default_rules(engine) == len(default_rules())
    assert install_default_rules(engine) == 0
    names = {r["name"] for r in queries.list_rules(engine)}
    assert names == {r.name for r in default_rules()}


def test_default_ticker_drop_rule_fires_after_its_for_delay(store: tuple[str, Engine]) -> None:
    _, engine = store
    install_default_rules(engine)
    seed(engine, [scored(f"n{i}", minutes(i), -0.7) for i in range(8)])
    assert evaluate_rules(engine, now=minutes(7)) == []  # pending: 5 minutes 'for'
    events = evaluate_rules(engine, now=minutes(12))
    assert {(e.rule_name, e.ticker) for e in events} >= {("ticker-sentiment-drop", "AAPL")}
