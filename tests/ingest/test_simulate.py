"""The demo stream: valid messages, deterministic, and with a visible regime shift."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ingest.broker import EmbeddedBroker
from ingest.exceptions import IngestError
from ingest.producer import Publisher, make_producer
from ingest.schema import decode, encode
from ingest.simulate import COMPANIES, RegimeSchedule, generate_messages, simulate

START = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = [encode(m) for m in generate_messages(seed=7, count=500, start=START)]
    b = [encode(m) for m in generate_messages(seed=7, count=500, start=START)]
    c = [encode(m) for m in generate_messages(seed=8, count=500, start=START)]
    assert a == b
    assert a != c


def test_messages_are_valid_schema_v1_and_timed_by_rate() -> None:
    msgs = list(generate_messages(seed=1, count=400, start=START, rate=10))
    assert len({m.dedupe_key for m in msgs}) == 400
    for i, m in enumerate(msgs):
        assert decode(encode(m), max_bytes=100_000) == m
        assert m.published_at == START + timedelta(seconds=i / 10)
    kinds = Counter(m.kind for m in msgs)
    assert kinds["news"] > 50 and kinds["comment"] > 200
    assert all(m.title and m.url for m in msgs if m.kind == "news")
    symbols = {c.ticker for c in COMPANIES}
    mentioned = {t for m in msgs for t in m.tickers}
    assert mentioned <= symbols and len(mentioned) >= 15


def test_ids_differ_between_runs_but_not_within_one() -> None:
    first = next(generate_messages(seed=1, count=1, start=START))
    later = next(generate_messages(seed=1, count=1, start=START + timedelta(hours=1)))
    assert first.id != later.id
    assert first.text == later.text


def test_regime_shift_turns_one_ticker_negative_then_it_recovers() -> None:
    schedule = RegimeSchedule(calm_s=60, negative_s=240, recovery_s=120)
    msgs = list(generate_messages(seed=3, count=int(420 * 5), start=START, rate=5,
                                  regime_ticker="TSLA", schedule=schedule))

    def negative_share(phase_range: tuple[float, float]) -> tuple[float, int]:
        lo, hi = phase_range
        about = [m for m in msgs if "TSLA" in m.text or "Tesla" in m.text
                 if lo <= (m.published_at - START).total_seconds() < hi]
        neg = sum(m.extra_fields()["sim_sentiment"] == "negative" for m in about)
        return neg / len(about), len(about)

    calm, n_calm = negative_share((0, 60))
    shift, n_shift = negative_share((60, 300))
    recovery, _ = negative_share((300, 420))
    assert shift > 0.6 and calm < 0.5 and recovery < 0.3
    # attention: the ticker in trouble is talked about far more than its base share
    assert n_shift / 240 > 3 * (n_calm / 60)
    others = [m for m in msgs if 60 <= (m.published_at - START).total_seconds() < 300
              and "TSLA" not in m.tickers and "$TSLA" not in m.text]
    other_neg = sum(m.extra_fields()["sim_sentiment"] == "negative" for m in others)
    assert other_neg / len(others) < 0.4


def test_regime_ticker_takes_turns_by_default() -> None:
    schedule = RegimeSchedule(calm_s=10, negative_s=20, recovery_s=10)
    msgs = list(generate_messages(seed=5, count=40 * 4 * 5, start=START, rate=5,
                                  schedule=schedule))
    shifted = Counter(
        t for m in msgs if m.extra_fields()["sim_phase"] == "negative" for t in m.tickers
    )
    assert len([t for t, n in shifted.items() if n >= 10]) >= 3


def test_unknown_regime_ticker() -> None:
    with pytest.raises(IngestError, match="unknown simulator ticker 'ZZZ'"):
        next(generate_messages(regime_ticker="ZZZ"))


def test_simulate_publishes_count_messages(
    tansu: EmbeddedBroker, topic_names: dict[str, str], read_topic
) -> None:
    topics = {"news": topic_names["news"], "comment": topic_names["comments"]}
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        sent = simulate(pub, topics, rate=2000, count=60, seed=2)
    assert sent == 60
    expected = Counter(m.kind for m in generate_messages(seed=2, count=60, rate=2000))
    news = read_topic(topic_names["news"], expected["news"])
    comments = read_topic(topic_names["comments"], expected["comment"])
    assert (len(news), len(comments)) == (expected["news"], expected["comment"])
    assert {decode(r.value, max_bytes=10_000).kind for r in news} == {"news"}
    assert {decode(r.value, max_bytes=10_000).kind for r in comments} == {"comment"}


def test_simulate_stops_on_event(tansu: EmbeddedBroker, topic_names: dict[str, str]) -> None:
    topics = {"news": topic_names["news"], "comment": topic_names["comments"]}
    stop = threading.Event()
    stop.set()
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        assert simulate(pub, topics, rate=1, count=100, stop=stop) == 0
