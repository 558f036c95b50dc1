"""Every dashboard page under AppTest, against a real SQLite store seeded through save_batch,
the price loader and the alert engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from alerts.engine import evaluate_rules
from storage import queries
from storage.queries import A, D
from tests.alerts.seeding import SCENARIO_END, scored, seed
from tests.dashboard.conftest import APP

Store = tuple[str, Engine]


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def table(at: AppTest, *columns: str):  # type: ignore[no-untyped-def]
    """The first table showing all these columns (st.dataframe has no key in AppTest)."""
    for df in at.dataframe:
        if set(columns) <= set(df.value.columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def count_docs(engine: Engine, since: timedelta | None = None) -> int:
    stmt = select(func.count()).select_from(D)
    if since is not None:
        stmt = stmt.where(D.c.event_at > SCENARIO_END - since)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def test_market_page(seeded: Store) -> None:
    _, engine = seeded
    at = app()
    assert at.title[0].value == "Market sentiment"
    assert metric(at, "Documents") == f"{count_docs(engine, timedelta(days=1)):,}"
    assert metric(at, "Open alerts") == "3"
    movers = table(at, "ticker", "change")
    assert movers.iloc[0]["ticker"] == "TSLA"  # the sell-off is the biggest move
    assert movers.iloc[0]["change"] < 0
    at.selectbox(key="market_range").set_value("Last 6 hours").run()
    assert not at.exception
    assert metric(at, "Documents") == f"{count_docs(engine, timedelta(hours=6)):,}"
    at.selectbox(key="market_range").set_value("All time").run()
    assert metric(at, "Documents") == f"{count_docs(engine):,}"


def test_pages_on_an_empty_store(empty_store: Store) -> None:
    for page in (None, "ticker", "live", "alerts", "rules", "sql"):
        at = app(page)
        assert at.title, page
    assert "No scored documents yet" in app().info[0].value
    assert "No rules yet" in app("rules").info[0].value


def test_ticker_page(seeded: Store) -> None:
    at = app("ticker")
    assert at.title[0].value == "Ticker drill-down"
    picker = at.selectbox(key="ticker_pick")
    assert picker.value == "TSLA"  # busiest in the last 24 hours (its sell-off burst)
    assert metric(at, "Last close") == "200.00"  # prices loaded for TSLA
    docs = table(at, "tickers", "score", "text")
    assert set(docs["tickers"]) == {"TSLA"}
    times = list(docs["event_at"])
    assert times == sorted(times, reverse=True)  # newest first by default

    at.toggle(key="most_negative").set_value(True).run()
    docs = table(at, "tickers", "score", "text")
    scores = list(docs["score"])
    assert scores == sorted(scores) and scores[0] < -0.8

    picker = at.selectbox(key="ticker_pick")
    picker.set_value("AAPL").run()
    assert not at.exception
    assert metric(at, "Last close") == "no prices"
    assert set(table(at, "tickers", "score", "text")["tickers"]) == {"AAPL"}


def test_live_feed_page_and_pause(seeded: Store) -> None:
    _, engine = seeded
    at = app("live")
    assert at.title[0].value == "Live feed"
    feed = table(at, "tickers", "score", "text")
    assert len(feed) == 50
    newest = queries.live_feed(engine, limit=1)[0]
    assert feed.iloc[0]["text"] == newest["text"]
    at.toggle(key="live_on").set_value(False).run()
    assert not at.exception
    assert any("paused" in c.value for c in at.caption)


def test_alerts_page_acknowledge_and_evidence(seeded: Store) -> None:
    _, engine = seeded
    at = app("alerts")
    assert at.title[0].value == "Alerts"
    assert metric(at, "Open") == "3"
    open_table = table(at, "rule_name", "acknowledged_at")
    assert set(open_table["ticker"]) == {"TSLA"}
    chosen = at.selectbox(key="alert_pick").value
    evidence = table(at, "tickers", "score", "text")
    assert len(evidence) == 10 and set(evidence["tickers"]) == {"TSLA"}

    button(at, "Acknowledge").click().run()
    assert not at.exception
    assert queries.get_alert(engine, chosen)["acknowledged_at"] is not None
    assert metric(at, "Unacknowledged") == "2"
    assert any("acknowledged" in s.value for s in at.success)


def test_alerts_page_toasts_a_new_alert(seeded: Store) -> None:
    _, engine = seeded
    at = app("alerts")
    assert not at.toast  # nothing new since the page opened
    # GS collapses too; the worker's evaluation opens its alerts while the page is open
    later = SCENARIO_END + timedelta(minutes=20)
    seed(engine, [scored(f"gs-crash-{i}", later - timedelta(minutes=i), -0.9, tickers=("GS",))
                  for i in range(15)])
    evaluate_rules(engine, now=later - timedelta(minutes=6))
    assert evaluate_rules(engine, now=later)
    at.run()
    assert not at.exception
    toasts = [t.value for t in at.toast]
    assert toasts and all("GS" in t for t in toasts)
    assert any("ticker-sentiment-drop on GS" in t for t in toasts)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(A)).scalar() == 3 + len(toasts)


def test_rules_page_create_validate_disable(seeded: Store) -> None:
    _, engine = seeded
    at = app("rules")
    assert at.title[0].value == "Alert rules"
    assert len(table(at, "name", "definition")) == 4

    # a refused rule: the resolve threshold on the wrong side of the threshold
    at.text_input(key="create_rule_name").input("bad-rule")
    at.number_input(key="create_rule_resolve").set_value(-0.6)
    button(at, "Create rule").click().run()
    assert not at.exception
    assert ">= threshold" in at.error[0].value
    assert queries.get_rule(engine, "bad-rule") is None

    at.text_input(key="create_rule_name").input("gs-drop")
    at.text_input(key="create_rule_target").input("gs")
    at.number_input(key="create_rule_resolve").set_value(-0.2)
    at.text_input(key="create_rule_window").input("30m")
    button(at, "Create rule").click().run()
    assert not at.exception and not at.error
    rule = queries.get_rule(engine, "gs-drop")
    assert (rule.target, rule.window_s, rule.resolve_threshold) == ("GS", 1800, -0.2)
    assert "Rule gs-drop created" in at.success[0].value
    assert len(table(at, "name", "definition")) == 5

    # disable the rule with open alerts: they are resolved
    drop_id = queries.get_rule(engine, "ticker-sentiment-drop").id
    at.selectbox(key="edit_pick").set_value(drop_id).run()
    button(at, "Disable rule").click().run()
    assert not at.exception
    assert queries.get_rule(engine, drop_id).enabled is False
    assert "1 open alert(s) resolved" in at.success[0].value


def test_rules_page_edit(seeded: Store) -> None:
    _, engine = seeded
    at = app("rules")
    rule_id = queries.get_rule(engine, "market-sentiment-drop").id
    at.selectbox(key="edit_pick").set_value(rule_id).run()
    at.number_input(key=f"edit_rule_{rule_id}_threshold").set_value(-0.25)
    at.text_input(key=f"edit_rule_{rule_id}_for").input("15m")
    button(at, "Save changes").click().run()
    assert not at.exception and not at.error
    rule = queries.get_rule(engine, rule_id)
    assert (rule.threshold, rule.for_s) == (-0.25, 900)

    at.selectbox(key="edit_pick").set_value(rule_id).run()
    at.text_input(key=f"edit_rule_{rule_id}_target").input("AAPL")  # market takes no target
    button(at, "Save changes").click().run()
    assert "no target" in at.error[0].value
    assert queries.get_rule(engine, rule_id).target is None


def test_sql_page_runs_refuses_and_downloads(seeded: Store) -> None:
    _, engine = seeded
    at = app("sql")
    assert at.title[0].value == "SQL console"
    schema_names = [e.label for e in at.expander]
    assert "documents (table)" in schema_names and "ticker_sentiment_hour (view)" in schema_names

    at.selectbox(key="sql_example").set_value("Most mentioned tickers").run()
    button(at, "Run").click().run()
    assert not at.exception and not at.error
    result = table(at, "ticker", "n")
    assert result.iloc[0]["ticker"] == "TSLA"
    assert at.get("download_button")

    area = next(t for t in at.text_area if t.label == "Query")
    area.input("DELETE FROM documents").run()
    button(at, "Run").click().run()
    assert not at.exception
    assert at.error and "delete" in at.error[0].value.lower()
    assert count_docs(engine) > 0


@pytest.mark.parametrize("page", ["ticker", "sql"])
def test_password_gate(seeded: Store, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("FINSENT_DASHBOARD_PASSWORD", "s3cret")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["finsent"]
    assert not at.metric and not at.dataframe
    # other pages are not registered before login: they cannot be reached
    with pytest.raises(ValueError):
        at.switch_page(f"pages/{page}.py")

    at.text_input(key="login_password").input("wrong")
    button(at, "Log in").click().run()
    assert at.error[0].value == "Wrong password."
    assert [t.value for t in at.title] == ["finsent"]

    at.text_input(key="login_password").input("s3cret")
    button(at, "Log in").click().run()
    assert not at.exception
    assert at.title[0].value == "Market sentiment"
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception and at.title[0].value != "finsent"
