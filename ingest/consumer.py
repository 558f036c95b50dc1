"""The consumer side of the worker: raw records in, offsets committed only when asked.

Nothing here decodes or commits on its own: the worker decides when a batch is safely stored
and then calls ``commit_offsets`` (at-least-once; the store's upsert makes replays harmless).
Lag is measured from the high-water mark the fetches report, never from a "latest offset"
request, so it is right on every Kafka-compatible broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from ingest.exceptions import CommitFailed, ConsumeError
from ingest.topics import client_config


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record as fetched, bytes untouched (decoding is the worker's next step)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def make_consumer(
    bootstrap: str,
    group: str,
    topics: list[str],
    *,
    client_options: Mapping[str, object] | None = None,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    max_poll_interval_ms: int,
    max_poll_records: int,
    listener: ConsumerRebalanceListener | None = None,
) -> KafkaConsumer:
    """A group member subscribed to ``topics``; offsets are committed by the caller only.

    ``listener`` hears every rebalance (partitions revoked / assigned), e.g. to log that a
    worker rejoined its group after a broker restart.

    ``auto_offset_reset="earliest"``: a new group starts from the oldest record, so nothing
    produced before the first worker started is skipped.
    """
    config: dict[str, Any] = client_config(bootstrap, client_options)
    config.update(
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        max_poll_interval_ms=max_poll_interval_ms,
        max_poll_records=max_poll_records,
    )
    try:
        consumer = KafkaConsumer(**config)
        consumer.subscribe(topics=list(topics), listener=listener)
    except KafkaError as e:
        raise ConsumeError(f"cannot start a Kafka consumer on {bootstrap}: {e}") from e
    return consumer


def poll_records(
    consumer: KafkaConsumer, timeout_ms: int, max_records: int | None = None
) -> list[RawRecord]:
    """One poll, flattened and ordered by (topic, partition, offset)."""
    try:
        batches = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    except KafkaError as e:
        raise ConsumeError(f"Kafka poll failed: {e}") from e
    records = [
        RawRecord(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            key=r.key,
            value=r.value,
            timestamp_ms=r.timestamp,
        )
        for recs in batches.values()
        for r in recs
    ]
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return records


def next_offsets(records: list[RawRecord]) -> dict[tuple[str, int], int]:
    """The offsets to commit after ``records`` are done: last offset + 1 per partition."""
    out: dict[tuple[str, int], int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        out[tp] = max(out.get(tp, -1), r.offset + 1)
    return out


def commit_offsets(consumer: KafkaConsumer, next_offsets: dict[tuple[str, int], int]) -> None:
    """Synchronous commit of "next record to read" per partition; ``CommitFailed`` otherwise.

    A failure means the group may hand these partitions to another worker, which re-reads from
    the last committed offset; the caller must not assume the batch is acknowledged.
    """
    if not next_offsets:
        return
    offsets = {
        TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
        for (topic, partition), offset in next_offsets.items()
    }
    try:
        consumer.commit(offsets)
    except KafkaError as e:
        raise CommitFailed(f"offset commit failed: {e}") from e


def consumer_lag(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Records not yet read per assigned partition (high-water mark - position).

    Partitions whose high-water mark is not known yet (no fetch answered since assignment)
    are left out rather than guessed.
    """
    lag: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=1000)
        except KafkaError:
            continue
        if position is None:
            continue
        lag[(tp.topic, tp.partition)] = max(0, high - position)
    return lag
