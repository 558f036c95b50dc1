"""Fault 6: hostile records interleaved with good ones.

- Properties (hypothesis, no broker): every builder in ``hostile.py`` is judged by the worker's
  own decode-and-check path exactly as it was built, and arbitrary bytes or JSON never raise
  anything but ``InvalidRecord`` (a dead letter with a reason) nor yield a message the store
  would refuse.
- Pipeline (real Tansu, a real worker process, SQLite and PostgreSQL): 10,000 hostile records
  from a seeded generator (random bytes, deep JSON, huge strings, control characters, invalid
  UTF-8, wrong types, missing and extra fields, three 10 MB values, other scripts) shuffled
  among 2,000 plain ones. Every bad record is dead-lettered byte for byte with its reason,
  every good one stored exactly as sent (texts over ``max_text_chars`` whole: the cut is for
  scoring only), and the worker never crashes.
"""

from __future__ import annotations

import json
import random
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import select

from finsent.worker import Worker, split_records
from ingest.consumer import RawRecord
from ingest.exceptions import InvalidRecord
from ingest.schema import decode
from scorer.backends import Sentiment
from scorer.tickers import TickerExtractor
from storage.db import make_engine
from storage.models import DeadLetter, Document, Score
from storage.writes import check_item
from tests.faults import hostile
from tests.faults.conftest import (
    Tally,
    assert_exactly_once,
    count,
    fault_settings,
    good_record,
    new_publisher,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault]

N_HOSTILE = 10_000
N_PLAIN = 2_000
SCHEMA_FIELDS = {"id", "source", "kind", "text", "title", "published_at", "tickers", "url",
                 "author", "lang"}
_FAKE_WORKER = SimpleNamespace(
    tickers=TickerExtractor.default(), backend=SimpleNamespace(model_version="m-1:test")
)
_NEUTRAL = Sentiment("neutral", 0.1, 0.8, 0.1, 0.0)


def judge(value: bytes | None, max_bytes: int = hostile.MAX_MESSAGE_BYTES) -> str | None:
    """What the worker does with one record: None = stored, else the dead-letter reason.
    The same steps as ``Worker.handle``: decode, build the stored item, check it."""
    rec = RawRecord("t", 0, 0, b"k", value, 1_700_000_000_000)
    batch = split_records([rec], max_bytes)
    if batch.bad:
        return batch.bad[0][1]
    (_, msg), = batch.good
    item = Worker.to_scored_document(_FAKE_WORKER, rec, msg, _NEUTRAL)  # type: ignore[arg-type]
    problem = check_item(item)
    return None if problem is None else f"unstorable: {problem}"


PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(rng=st.randoms(use_true_random=False), builder=st.sampled_from(hostile.BUILDERS))
def test_every_builder_is_judged_as_built(rng: random.Random, builder) -> None:  # type: ignore[no-untyped-def]
    h = builder(rng, "p-1")
    reason = judge(h.value)
    if h.good:
        assert reason is None, f"{h.category} refused: {reason}"
    else:
        assert reason, f"{h.category} accepted: {h.value[:200] if h.value else h.value!r}"
        if h.why:
            assert h.why in reason.lower(), f"{h.category}: {reason!r} lacks {h.why!r}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"id": json_values, "source": json_values, "kind": st.sampled_from(["news", "comment"]),
     "text": json_values},
    optional={"title": json_values, "tickers": json_values, "published_at": json_values,
              "url": json_values, "author": json_values, "lang": json_values,
              "extra": json_values},
)


@PROPERTY
@given(
    value=st.binary(max_size=400)
    | json_values.map(lambda v: json.dumps(v).encode())
    | message_like.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
)
def test_any_bytes_are_stored_or_dead_lettered_never_raised(value: bytes) -> None:
    try:
        decode(value, max_bytes=hostile.MAX_MESSAGE_BYTES)
    except InvalidRecord as e:
        assert e.reason.strip()
        return
    assert judge(value) is None, "decoded, yet the store would refuse it"


def _dead_letter_topic_size(bootstrap: str, topic: str, timeout_s: float = 30) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        deadline = time.monotonic() + timeout_s
        while consumer.highwater(tp) is None and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
        high = consumer.highwater(tp)
        assert high is not None, "the dead-letter topic did not answer"
        return int(high)
    finally:
        consumer.close()


@pytest.mark.slow
def test_hostile_records_dead_lettered_good_ones_stored(  # type: ignore[no-untyped-def]
    tansu, topic_names, db_url, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, db_url, fault_model_dir)
    records = hostile.hostile_records(N_HOSTILE, seed=6)
    plain = [good_record(i, "plain") for i in range(N_PLAIN)]
    order = [("h", i) for i in range(N_HOSTILE)] + [("p", i) for i in range(N_PLAIN)]
    rng = random.Random(66)
    rng.shuffle(order)
    publisher = new_publisher(s)
    try:
        for kind, i in order:
            topic = rng.choice([s.topic_news, s.topic_comments])
            if kind == "h":
                publisher.publish_raw(topic, records[i].value, key=f"h{i}".encode())  # type: ignore[arg-type]
            else:
                publisher.publish_raw(topic, json.dumps(plain[i]).encode(),
                                      key=plain[i]["id"].encode())
        publisher.flush()
    finally:
        publisher.close()
    good = {f"h{i}": h for i, h in enumerate(records) if h.good}
    bad = {f"h{i}": h for i, h in enumerate(records) if not h.good}
    say(f"published {N_HOSTILE} hostile ({len(bad)} bad) among {N_PLAIN} plain")

    worker = workers(s, "hostile")
    t0 = time.monotonic()

    def done() -> bool:
        assert worker.alive(), f"the worker crashed:\n{worker.log_tail()}"
        return (count(s.database_url, Document) >= len(good) + N_PLAIN
                and count(s.database_url, DeadLetter) >= len(bad))

    wait_until(done, 360, "every record stored or dead-lettered")
    wait_drained(s)
    elapsed = time.monotonic() - t0
    assert worker.alive()
    code = worker.terminate()
    log = worker.log_text()
    assert code == 0 and "Traceback" not in log, log[-4000:]

    engine = make_engine(s.database_url)
    try:
        with engine.connect() as conn:
            dead = {
                (key or b"").decode(): (reason, raw)
                for key, reason, raw in conn.execute(
                    select(DeadLetter.key, DeadLetter.reason, DeadLetter.raw)
                )
            }
            docs = {
                ext: (text, title, extra)
                for ext, text, title, extra in conn.execute(
                    select(Document.external_id, Document.text, Document.title, Document.extra)
                    .where(Document.source == hostile.SOURCE)
                )
            }
            long_scored = conn.execute(
                select(Document.external_id)
                .join(Score)
                .where(Document.source == hostile.SOURCE)
                .where(Document.external_id.in_(
                    [k for k, h in good.items() if h.category == "huge text (allowed)"]
                ))
            ).scalars().all()
    finally:
        engine.dispose()

    # every bad record dead-lettered once, byte for byte, with its reason
    assert set(dead) == set(bad), (
        f"missing {sorted(set(bad) - set(dead))[:5]}, extra {sorted(set(dead) - set(bad))[:5]}"
    )
    wrong = []
    for key, h in bad.items():
        reason, raw = dead[key]
        if raw != (h.value or b"") or not reason.strip() or (h.why and h.why not in reason.lower()):
            wrong.append((key, h.category, reason[:120]))
    assert not wrong, f"{len(wrong)} dead letters wrong, e.g. {wrong[:5]}"
    assert _dead_letter_topic_size(s.kafka_bootstrap, s.topic_deadletter) == len(bad)

    # every good record stored as sent
    assert set(docs) == {h.doc["id"] for h in good.values()}
    mismatched = []
    for h in good.values():
        text, title, extra = docs[h.doc["id"]]
        want_extra = {k: v for k, v in h.doc.items() if k not in SCHEMA_FIELDS} or None
        if text != h.doc["text"] or title != h.doc.get("title") or extra != want_extra:
            mismatched.append((h.doc["id"], h.category))
    assert not mismatched, f"{len(mismatched)} stored differently, e.g. {mismatched[:5]}"
    # longer than max_text_chars: scored (on its beginning) and stored whole
    longest = max((h for h in good.values() if h.category == "huge text (allowed)"),
                  key=lambda h: len(h.doc["text"]))
    assert len(longest.doc["text"]) > 10 * s.max_text_chars
    assert len(docs[longest.doc["id"]][0]) == len(longest.doc["text"])
    assert len(long_scored) == sum(1 for h in good.values()
                                   if h.category == "huge text (allowed)")
    odd = assert_exactly_once(s.database_url, [h.doc["id"] for h in good.values()],
                              hostile.SOURCE)
    usual = assert_exactly_once(s.database_url, [p["id"] for p in plain], "plain")
    tally = Tally(sent=N_HOSTILE + N_PLAIN, stored=odd.stored + usual.stored,
                  duplicated=odd.duplicated + usual.duplicated, lost=odd.lost + usual.lost,
                  dead=odd.dead)
    categories = sorted({h.category for h in records})
    backend = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    fault_report.add(
        f"6 hostile input ({backend})",
        f"{N_HOSTILE} generated hostile records ({len(bad)} bad, {len(good)} odd but valid; "
        f"{len(categories)} kinds incl. three 10 MB values) among {N_PLAIN} plain",
        tally,
        f"n/a: worker never crashed ({elapsed:.0f} s to drain)",
    )
