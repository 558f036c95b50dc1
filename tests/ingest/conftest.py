"""Helpers for the ingest tests: read back what landed on a topic, without a consumer group
(assigning partitions directly avoids the group join wait)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from ingest.broker import EmbeddedBroker

ReadTopic = Callable[..., list[ConsumerRecord]]


@pytest.fixture
def read_topic(tansu: EmbeddedBroker) -> ReadTopic:
    """``read_topic(topic, expected, timeout_s=15)``: every record until ``expected`` arrived
    (then a short extra poll, so that surplus records are seen too)."""

    def _read(topic: str, expected: int, timeout_s: float = 15.0,
              bootstrap: str | None = None) -> list[ConsumerRecord]:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap or tansu.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            deadline = time.monotonic() + timeout_s
            parts = None
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    time.sleep(0.1)
            assert parts, f"topic {topic} has no partitions"
            consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
            consumer.seek_to_beginning()
            out: list[ConsumerRecord] = []
            while len(out) < expected and time.monotonic() < deadline:
                for recs in consumer.poll(timeout_ms=200).values():
                    out.extend(recs)
            for recs in consumer.poll(timeout_ms=300).values():
                out.extend(recs)
            return out
        finally:
            consumer.close()

    return _read
