"""Producer, consumer group, commits, lag and dead-letters on a real (embedded Tansu) broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest.broker import EmbeddedBroker
from ingest.consumer import (
    RawRecord,
    commit_offsets,
    consumer_lag,
    make_consumer,
    next_offsets,
    poll_records,
)
from ingest.deadletter import DeadLetterPublisher
from ingest.exceptions import CommitFailed, PublishError
from ingest.producer import Publisher, make_producer
from ingest.schema import Message, decode
from ingest.topics import ensure_topics

GROUP_TIMING = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


def consumer_for(bootstrap: str, group: str, topics: list[str], **kw: int) -> KafkaConsumer:
    options = {**GROUP_TIMING, "max_poll_interval_ms": 30_000, "max_poll_records": 500, **kw}
    return make_consumer(bootstrap, group, topics, **options)


def poll_until(consumer: KafkaConsumer, n: int, timeout_s: float = 20,
               max_records: int | None = None) -> list[RawRecord]:
    out: list[RawRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(poll_records(consumer, timeout_ms=200, max_records=max_records))
    return out


def news(i: int) -> Message:
    return Message(id=f"n{i}", source="wire", kind="news", text=f"headline {i}", tickers=["AAPL"])


def test_ensure_topics_is_idempotent(tansu: EmbeddedBroker, topic_names: dict[str, str]) -> None:
    fresh = topic_names["news"] + ".extra"
    assert ensure_topics(tansu.bootstrap, [topic_names["news"], fresh], 6) == [fresh]
    assert ensure_topics(tansu.bootstrap, [topic_names["news"], fresh], 6) == []
    consumer = KafkaConsumer(bootstrap_servers=tansu.bootstrap)
    try:
        assert consumer.partitions_for_topic(fresh) == set(range(6))
    finally:
        consumer.close()


def test_round_trip_commit_and_resume(tansu: EmbeddedBroker, topic_names: dict[str, str]) -> None:
    topic = topic_names["news"]
    group = f"g-{topic}"
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        for i in range(30):
            pub.publish(news(i), topic)
        pub.flush()
        assert pub.delivered == 30

    first = consumer_for(tansu.bootstrap, group, [topic])
    try:
        records = poll_until(first, 30)
        assert len(records) == 30
        assert {r.partition for r in records} <= set(range(6))
        assert len({r.partition for r in records}) > 1  # keys spread over partitions
        for r in records:
            msg = decode(r.value, max_bytes=10_000)
            assert r.key == f"wire:{msg.id}".encode()
            assert r.timestamp_ms > 0
        ordered = [(r.topic, r.partition, r.offset) for r in records]
        assert ordered == sorted(ordered)
        assert sorted(decode(r.value, max_bytes=10_000).id for r in records) == sorted(
            f"n{i}" for i in range(30)
        )
        commit_offsets(first, next_offsets(records))
        assert set(consumer_lag(first).values()) <= {0}
    finally:
        first.close()

    with Publisher(make_producer(tansu.bootstrap)) as pub:
        for i in range(30, 35):
            pub.publish_raw(topic, news(i).model_dump_json().encode(), key=b"one-key")

    second = consumer_for(tansu.bootstrap, group, [topic])
    try:
        head = poll_until(second, 1, max_records=1)
        assert len(head) == 1
        lag = consumer_lag(second)
        assert lag[(topic, head[0].partition)] == 4  # same key, same partition, 4 unread
        rest = poll_until(second, 4)
        ids = [decode(r.value, max_bytes=10_000).id for r in head + rest]
        assert ids == [f"n{i}" for i in range(30, 35)]  # only what was not committed, in order
        commit_offsets(second, next_offsets(head + rest))
        assert consumer_lag(second)[(topic, head[0].partition)] == 0
        assert second.committed(TopicPartition(topic, head[0].partition)) == head[0].offset + 5
    finally:
        second.close()


def test_commit_after_eviction_raises_commit_failed(
    tansu: EmbeddedBroker, topic_names: dict[str, str]
) -> None:
    """A worker stuck past max_poll_interval_ms is out of the group: its commit must fail."""
    topic = topic_names["comments"]
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        pub.publish_raw(topic, b"x", key=b"k")
    consumer = consumer_for(tansu.bootstrap, f"g-{topic}", [topic], max_poll_interval_ms=1000)
    try:
        records = poll_until(consumer, 1)
        assert records
        time.sleep(3)  # longer than max_poll_interval_ms without polling
        with pytest.raises(CommitFailed, match="offset commit failed"):
            commit_offsets(consumer, next_offsets(records))
    finally:
        consumer.close()


def test_dead_letter_keeps_bytes_and_says_why(
    tansu: EmbeddedBroker, topic_names: dict[str, str], read_topic
) -> None:
    topic = topic_names["deadletter"]
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        dead = DeadLetterPublisher(pub, topic)
        bad = RawRecord("src.news", 4, 1234, b"k1", b"\xff\xfe not utf8", 1)
        dead.publish(bad, "not valid UTF-8")
        dead.publish(RawRecord("src.comments", 0, 7, None, None, 2), "record has no value (null)")
        dead.flush()
    records = sorted(read_topic(topic, 2), key=lambda r: r.offset)
    assert len(records) == 2
    first, second = records
    assert first.value == b"\xff\xfe not utf8"
    assert first.key == b"k1"
    assert dict(first.headers) == {
        "finsent-reason": b"not valid UTF-8",
        "finsent-source-topic": b"src.news",
        "finsent-source-partition": b"4",
        "finsent-source-offset": b"1234",
    }
    assert second.value == b""
    assert dict(second.headers)["finsent-source-offset"] == b"7"


def test_publisher_survives_a_broker_restart(read_topic) -> None:
    """In-memory broker restarted: the idempotent producer's state is gone; the publisher
    recreates its producer and resends, so nothing published after the restart is lost."""
    port = None
    broker = EmbeddedBroker().start()
    try:
        port = broker.port
        ensure_topics(broker.bootstrap, ["restart.news"], 3)
        pub = Publisher(make_producer(broker.bootstrap), topic_partitions=3, retry_timeout_s=30)
        for i in range(5):
            pub.publish(news(i), "restart.news")
        pub.flush()
        broker.stop()
        broker = EmbeddedBroker(port=port).start()
        ensure_topics(broker.bootstrap, ["restart.news"], 3)  # as `finsent broker` does
        for i in range(5, 15):
            pub.publish(news(i), "restart.news")
        pub.close()
        assert pub.reconnects >= 1
        assert pub.delivered == 15
        records = read_topic("restart.news", 10, bootstrap=broker.bootstrap)
        ids = sorted(int(decode(r.value, max_bytes=10_000).id[1:]) for r in records)
        assert ids == list(range(5, 15))
        assert {r.partition for r in records} <= {0, 1, 2}
    finally:
        broker.stop()


def test_record_refused_by_size_is_a_publish_error(
    tansu: EmbeddedBroker, topic_names: dict[str, str]
) -> None:
    pub = Publisher(make_producer(tansu.bootstrap, max_request_size=2048), retry_timeout_s=5)
    try:
        pub.publish_raw(topic_names["news"], b"x" * 10_000)
        with pytest.raises(PublishError, match="Kafka refused a record"):
            pub.flush()
        assert pub.reconnects == 0
    finally:
        pub.close()


def test_acks_zero_is_refused(tansu: EmbeddedBroker) -> None:
    with pytest.raises(PublishError, match="acks=0"):
        make_producer(tansu.bootstrap, {"acks": 0})


def test_closed_publisher_refuses_records(tansu: EmbeddedBroker) -> None:
    pub = Publisher(make_producer(tansu.bootstrap))
    pub.close()
    with pytest.raises(PublishError, match="closed"):
        pub.publish_raw("any", b"x")


def test_records_published_while_the_broker_is_down_are_kept_until_it_is_back(read_topic) -> None:
    broker = EmbeddedBroker().start()
    port = broker.port
    try:
        ensure_topics(broker.bootstrap, ["down.news"], 2)
        pub = Publisher(make_producer(broker.bootstrap), topic_partitions=2, retry_timeout_s=2)
        broker.stop()
        for i in range(3):
            pub.publish(news(i), "down.news")
        with pytest.raises(PublishError, match="not delivered"):
            pub.flush()
        broker = EmbeddedBroker(port=port).start()
        ensure_topics(broker.bootstrap, ["down.news"], 2)
        pub.flush()  # the same records, resent on a fresh producer
        assert pub.reconnects == 1
        pub.close()
        records = read_topic("down.news", 3, bootstrap=broker.bootstrap)
        assert {decode(r.value, max_bytes=10_000).id for r in records} == {"n0", "n1", "n2"}
    finally:
        broker.stop()
