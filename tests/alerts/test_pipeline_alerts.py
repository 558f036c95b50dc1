"""A sentiment regime shift through the real pipeline (Tansu, the worker, the shipped model,
SQLite) opens the alert of the ticker whose sentiment drops, and resolves it on recovery."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from alerts.engine import evaluate_rules
from alerts.events import AlertEvent
from alerts.rules import add_rule, validate_rule
from finsent.config import load_settings
from finsent.paths import DEFAULT_MODEL_DIR
from finsent.worker import Worker
from ingest.producer import Publisher, make_producer
from ingest.schema import Message
from ingest.simulate import RegimeSchedule, generate_messages
from storage import queries
from storage.db import make_engine
from storage.queries import A, D
from tests.integration.conftest import wait_until

START = datetime(2024, 3, 4, 14, 0, tzinfo=UTC)
# data time: one message a second; TSLA calm for 2 min, negative for 5, recovering for 5
SCHEDULE = RegimeSchedule(calm_s=120, negative_s=300, recovery_s=300, attention=0.5)
NEGATIVE_END = 420


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    from scorer.backends import load_backend

    if not (DEFAULT_MODEL_DIR / "config.json").exists():
        pytest.skip(f"the shipped model is missing at {DEFAULT_MODEL_DIR}")
    return load_backend(DEFAULT_MODEL_DIR, backend="auto", device="cpu", max_length=64)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.lock = threading.Lock()

    def notify(self, events: Sequence[AlertEvent]) -> None:
        with self.lock:
            self.events.extend(events)


@pytest.fixture
def running(tansu, topic_names, sqlite_url, backend) -> Iterator[tuple[Engine, Recorder]]:  # type: ignore[no-untyped-def]
    """A worker evaluating the rules after its batches, as `finsent worker` does."""
    settings = load_settings(
        kafka_bootstrap=tansu.bootstrap,
        topic_news=topic_names["news"],
        topic_comments=topic_names["comments"],
        topic_deadletter=topic_names["deadletter"],
        consumer_group=f"finsent-alerts-{uuid.uuid4().hex[:8]}",
        database_url=sqlite_url,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        batch_max_wait_ms=50,
        max_length=64,
    )
    engine = make_engine(sqlite_url)
    recorder = Recorder()
    stop = threading.Event()
    worker = Worker(
        settings, backend=backend, stop=stop, alert_interval_s=0.2,
        alert_hook=lambda eng: evaluate_rules(eng, notifier=recorder),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as e:  # surfaced below
            failure.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield engine, recorder
    finally:
        stop.set()
        thread.join(60)
        engine.dispose()
    assert not thread.is_alive() and not failure, failure


def publish(bootstrap: str, topics: dict[str, str], messages: list[Message]) -> None:
    publisher = Publisher(make_producer(bootstrap))
    try:
        for m in messages:
            publisher.publish(m, topics["news" if m.kind == "news" else "comments"])
        publisher.flush()
    finally:
        publisher.close()


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(D)).scalar() or 0)


def tsla_alerts(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(A).where(A.c.ticker == "TSLA").order_by(A.c.id)).mappings()
        return [dict(r) for r in rows]


def test_regime_shift_opens_then_resolves_the_tickers_alert(
    running: tuple[Engine, Recorder], tansu, topic_names  # type: ignore[no-untyped-def]
) -> None:
    engine, recorder = running
    add_rule(engine, validate_rule(
        name="ticker-drop-2m", kind="mean_below", scope="ticker", threshold=-0.3,
        resolve_threshold=-0.1, window_s=120, min_count=10, for_s=0, cooldown_s=3600,
    ))
    stream = list(generate_messages(
        seed=5, count=720, start=START, rate=1.0, regime_ticker="TSLA", schedule=SCHEDULE,
    ))
    shift, recovery = stream[:NEGATIVE_END], stream[NEGATIVE_END:]

    publish(tansu.bootstrap, topic_names, shift)
    wait_until(lambda: stored(engine) >= len(shift), 300, "the calm and negative phases")
    wait_until(lambda: bool(tsla_alerts(engine)), 60, "TSLA's alert to open")
    [alert] = tsla_alerts(engine)
    assert alert["status"] == "open"
    opened = alert["opened_at"]
    start = START.replace(tzinfo=None)
    assert start + timedelta(seconds=SCHEDULE.calm_s) < opened <= start + timedelta(
        seconds=NEGATIVE_END
    )
    assert alert["value"] < -0.3
    evidence = queries.documents_by_ids(engine, alert["evidence"])
    assert evidence and all("TSLA" in d["tickers"] for d in evidence)
    assert all(d["label"] == "negative" for d in evidence)

    publish(tansu.bootstrap, topic_names, recovery)
    wait_until(lambda: stored(engine) >= len(stream), 300, "the recovery phase")
    wait_until(lambda: tsla_alerts(engine)[0]["status"] == "resolved", 60, "the resolve")
    [alert] = tsla_alerts(engine)
    assert alert["resolved_at"] >= start + timedelta(seconds=NEGATIVE_END)
    assert alert["last_value"] >= -0.1

    # only the ticker in the regime fired, once, and the worker's notifier heard both ends
    with engine.connect() as conn:
        every = conn.execute(select(A.c.ticker)).scalars().all()
    assert every == ["TSLA"]
    with recorder.lock:
        seen = [(e.event, e.ticker) for e in recorder.events]
    assert seen == [("opened", "TSLA"), ("resolved", "TSLA")]
