"""Publishing to Kafka with delivery confirmed: every producer of finsent goes through here.

``Publisher`` sends asynchronously (fast replays) but never forgets a record: each send's
future is kept until ``flush()`` (or the pending cap) checks it, and failed records are sent
again on a fresh producer. A fresh producer is the cure for a restarted broker: the idempotent
producer's id and sequence numbers are lost with the broker's state, and kafka-python's
producer never recovers from that by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from ingest.exceptions import IngestError, PublishError
from ingest.schema import Message, encode
from ingest.topics import client_config, ensure_topics

log = logging.getLogger(__name__)

# Errors that another attempt cannot fix; everything else gets a fresh producer and a resend.
_PERMANENT: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)

Headers = list[tuple[str, bytes]]


def make_producer(
    bootstrap: str,
    client_options: Mapping[str, object] | None = None,
    **overrides: Any,
) -> KafkaProducer:
    """A producer that waits for all in-sync replicas (``acks="all"``, never 0).

    Precedence: finsent's defaults < ``client_options`` (security settings, producer tuning)
    < ``overrides``; ``bootstrap`` names the servers. ``max_request_size`` is raised above
    Kafka's 1 MB default so an oversized record can still be dead-lettered byte for byte where
    the brokers allow it; the broker's own limit still applies and its refusal is permanent.
    """
    config: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
        "max_request_size": 16 * 1024 * 1024,
        "request_timeout_ms": 15_000,
        "delivery_timeout_ms": 30_000,
        "max_block_ms": 10_000,
        "bootstrap_timeout_ms": 10_000,
    }
    config.update(client_config(bootstrap, client_options))
    config.update(overrides)
    return _new_producer(config)


def _new_producer(config: Mapping[str, Any]) -> KafkaProducer:
    if config.get("acks") in (0, "0"):
        raise PublishError("acks=0 would lose records silently; finsent producers need acks=all")
    try:
        return KafkaProducer(**config)
    except KafkaError as e:
        servers = config.get("bootstrap_servers")
        raise PublishError(f"cannot connect a Kafka producer to {servers}: {e}") from e


def _force_close(producer: KafkaProducer) -> None:
    """Closes a producer whose records may be stuck, without waiting for them.

    kafka-python's ``close(timeout=0)`` flushes first and raises when batches cannot be
    delivered (broker gone), leaving its I/O thread running and retrying into whatever broker
    comes back. Its sender's ``force_close`` aborts those batches (their futures fail, so the
    publisher resends them) and ends the thread.
    """
    try:
        producer.close(timeout=0)
        return
    except KafkaError as e:
        log.info("dropping a producer with undelivered records (%s)", e)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5)
    producer._closed = True  # its __del__ would otherwise try to flush again


def _producer_config(producer: KafkaProducer) -> dict[str, Any]:
    """The settings a producer was built with, to build its replacement."""
    return {k: v for k, v in producer.config.items() if k in KafkaProducer.DEFAULT_CONFIG}


@dataclass(eq=False)
class _Pending:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers | None
    future: Any = None
    error: BaseException | None = None


class Publisher:
    """Sends records and makes sure each one lands, reconnecting when the broker restarted.

    An in-memory broker restarted without its topics may accept records into nothing
    (Tansu does); whoever restarts it recreates the topics (``finsent broker`` and ``up`` do),
    and ``topic_partitions`` makes the publisher recreate them before any resend.

    Not thread-safe: one publisher per thread. Call ``flush()`` before acting on delivery
    (e.g. committing consumer offsets after dead-lettering); it raises ``PublishError`` when
    records could not be delivered within ``retry_timeout_s``.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        *,
        topic_partitions: int | None = None,
        retry_timeout_s: float = 60.0,
        max_pending: int = 5000,
    ) -> None:
        """``producer``: from ``make_producer``; its settings build any replacement.
        ``topic_partitions``: when set, topics are (re)created before resending after a
        failure; an in-memory broker forgets its topics when it restarts."""
        self._producer: KafkaProducer | None = producer
        self._config = _producer_config(producer)
        servers = self._config.get("bootstrap_servers") or []
        self.bootstrap = servers if isinstance(servers, str) else ",".join(servers)
        self._topic_partitions = topic_partitions
        self._retry_timeout_s = retry_timeout_s
        self._max_pending = max_pending
        self._pending: list[_Pending] = []
        self._topics: set[str] = set()
        self.delivered = 0
        self.reconnects = 0
        self._closed = False

    @classmethod
    def connect(
        cls,
        bootstrap: str,
        client_options: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> Publisher:
        """``Publisher(make_producer(bootstrap, client_options), **kwargs)``."""
        return cls(make_producer(bootstrap, client_options), **kwargs)

    def publish(self, msg: Message, topic: str) -> None:
        """Schema-v1 JSON, keyed by ``source:id`` so one document's versions share a partition."""
        self.publish_raw(topic, encode(msg), msg.dedupe_key.encode("utf-8"))

    def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Any bytes (malformed records too, so that they are dead-lettered downstream)."""
        if self._closed:
            raise PublishError("publisher is closed")
        rec = _Pending(topic, value, key, headers)
        self._topics.add(topic)
        self._send(rec)
        self._pending.append(rec)
        if len(self._pending) >= self._max_pending:
            self._settle()

    def flush(self) -> None:
        """Blocks until every record published so far is acknowledged by the brokers."""
        if self._pending:
            self._settle()

    def close(self) -> None:
        """Flushes, then closes the producer; a closed publisher refuses new records."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        except BaseException:
            self._drop_producer()  # undelivered records: do not block on them a second time
            raise
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=5)
            except KafkaError:
                _force_close(producer)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivery -----------------------------------------------------------------------

    def _send(self, rec: _Pending) -> None:
        rec.error = None
        if self._producer is None:  # an earlier reconnect failed; the next settle retries
            rec.future = None
            rec.error = KafkaConnectionError("no connected producer")
            return
        try:
            rec.future = self._producer.send(
                rec.topic, value=rec.value, key=rec.key, headers=rec.headers
            )
        except KafkaError as e:  # no metadata within max_block_ms, producer in a fatal state
            rec.future = None
            rec.error = e

    def _settle(self) -> None:
        """Waits for the pending futures; resends failures on a fresh producer until the
        deadline. Delivered records leave the pending list as soon as they are confirmed."""
        deadline = time.monotonic() + self._retry_timeout_s
        attempt = 0
        while True:
            failed = self._collect_failures(deadline)
            if not failed:
                return
            permanent = [r for r in failed if isinstance(r.error, _PERMANENT)]
            if permanent:
                rec = permanent[0]
                self._pending = [r for r in self._pending if r not in permanent]
                raise PublishError(
                    f"Kafka refused a record for topic {rec.topic} "
                    f"({len(rec.value)} bytes): {rec.error}"
                ) from rec.error
            attempt += 1
            first = failed[0].error
            if time.monotonic() >= deadline:
                # The next flush starts on a fresh producer (topics ensured first): the old one
                # may otherwise resume into a broker that restarted without its topics.
                self._drop_producer()
                raise PublishError(
                    f"{len(failed)} record(s) not delivered to {self.bootstrap} within "
                    f"{self._retry_timeout_s:g}s: {first}"
                ) from first
            log.warning(
                "kafka publish failed (%s: %s); recreating the producer and resending %d "
                "record(s), attempt %d",
                type(first).__name__, first, len(failed), attempt,
            )
            self._reconnect(deadline)
            for rec in failed:
                self._send(rec)

    def _collect_failures(self, deadline: float) -> list[_Pending]:
        if self._producer is not None:
            # A producer gets its own delivery timeout, no more: one that has not delivered
            # by then is stuck (an idempotent producer retries "unknown producer id" from a
            # restarted broker forever), and the rest of the deadline is for a fresh one.
            delivery_s = float(self._config.get("delivery_timeout_ms") or 30_000) / 1000
            wait_s = max(0.1, min(deadline - time.monotonic(), delivery_s + 1.0))
            try:
                self._producer.flush(timeout=wait_s)
            except KafkaError as e:
                log.warning("kafka flush did not complete: %s", e)
        failed: list[_Pending] = []
        for rec in self._pending:
            if rec.future is not None:
                try:
                    rec.future.get(timeout=0.1)
                    continue
                except KafkaError as e:
                    rec.error = e
            failed.append(rec)
        self.delivered += len(self._pending) - len(failed)
        self._pending = failed
        return failed

    def _drop_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            _force_close(old)

    def _reconnect(self, deadline: float) -> None:
        self._drop_producer()
        backoff = 0.2
        while True:
            try:
                if self._topic_partitions:
                    remaining = max(1.0, deadline - time.monotonic())
                    security = {
                        k: v for k, v in self._config.items()
                        if k.startswith(("security_", "sasl_", "ssl_"))
                        and k in KafkaAdminClient.DEFAULT_CONFIG
                    }
                    ensure_topics(
                        self.bootstrap, sorted(self._topics), self._topic_partitions,
                        security, timeout_s=remaining,
                    )
                self._producer = _new_producer(self._config)
                self.reconnects += 1
                log.info("kafka producer recreated for %s", self.bootstrap)
                return
            except (IngestError, KafkaError) as e:
                if time.monotonic() + backoff >= deadline:
                    raise PublishError(
                        f"cannot reconnect to Kafka at {self.bootstrap}: {e}"
                    ) from e
                log.warning("kafka reconnect failed (%s); retrying in %.1fs", e, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
