"""The worker: poll -> decode/validate -> batch -> score -> one SQL transaction -> commit offsets.

At-least-once from Kafka made exactly-once in the store by idempotent upserts: offsets move only
after the batch's transaction commits (see ``Worker.checkpoint``), so a worker killed at any
instant loses nothing, and a redelivered record lands on the row it already has.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from sqlalchemy.engine import Engine
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)

from finsent import metrics
from finsent.config import Settings
from ingest.consumer import RawRecord, commit_offsets, consumer_lag, make_consumer, poll_records
from ingest.deadletter import DeadLetterPublisher
from ingest.exceptions import CommitFailed, InvalidRecord
from ingest.producer import Publisher, make_producer
from ingest.schema import Message, decode
from scorer.backends import Backend, Sentiment, load_backend
from scorer.batcher import plan_batches
from scorer.tickers import TickerExtractor
from storage.db import make_engine
from storage.exceptions import DatabaseUnavailable
from storage.writes import (
    DeadLetterIn,
    DocumentIn,
    MentionIn,
    ScoredDocument,
    ScoreIn,
    check_item,
    save_batch,
)

log = logging.getLogger("finsent.worker")

AlertHook = Callable[[Engine], object]


class BatchAbandoned(Exception):
    """Shutdown was asked for while the database was unavailable: the batch is given up
    unsaved and its offsets uncommitted, so a restarted worker reads it again."""


def _partitions(tps: Sequence[TopicPartition] | set[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return "; ".join(f"{t}{sorted(ps)}" for t, ps in sorted(by_topic.items())) or "none"


class RebalanceLog(ConsumerRebalanceListener):
    """Says when the group moves partitions, so an operator can see a worker rejoin after a
    crash of a peer or a broker restart; stale lag gauges of lost partitions are dropped, and
    every assigned partition is marked to restart from its committed offset.

    It runs inside kafka-python's event loop, so it only records; the worker's loop does the
    blocking work (``Worker.restart_from_committed``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            log.info("partitions revoked: %s", _partitions(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.assignments += 1
        if self.worker.assignments > 1:
            metrics.REBALANCES.inc()
        metrics.PARTITIONS_ASSIGNED.set(len(assigned))
        self.worker.forget_lag(assigned)
        self.worker.reseek = set(assigned)
        log.info(
            "group %s: %d partition(s) assigned: %s",
            self.worker.settings.consumer_group, len(assigned), _partitions(assigned),
        )


@dataclass
class Batch:
    """What one poll produced, split into records to score and records to dead-letter."""

    good: list[tuple[RawRecord, Message]] = field(default_factory=list)
    bad: list[tuple[RawRecord, str]] = field(default_factory=list)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Last processed offset + 1 per partition: what the group commits after the batch."""
        nxt: dict[tuple[str, int], int] = {}
        for rec in [r for r, _ in self.good] + [r for r, _ in self.bad]:
            key = (rec.topic, rec.partition)
            nxt[key] = max(nxt.get(key, 0), rec.offset + 1)
        return nxt

    def __len__(self) -> int:
        return len(self.good) + len(self.bad)


def naive_utc(ts: datetime | None) -> datetime | None:
    """The store keeps naive UTC."""
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def scoring_text(msg: Message, max_chars: int) -> str:
    """Title and body, cut at max_chars: the model sees at most max_length tokens anyway,
    and cutting first keeps tokenization of a 5 MB text from stalling the batch."""
    text = msg.text
    if msg.title and msg.title.strip() and msg.title.strip() not in text:
        text = f"{msg.title.strip()}. {text}"
    return text[:max_chars]


def split_records(records: Sequence[RawRecord], max_bytes: int) -> Batch:
    """Decode every record; a bad one becomes a dead letter with its reason, never an error."""
    batch = Batch()
    for rec in records:
        try:
            batch.good.append((rec, decode(rec.value, max_bytes=max_bytes)))
        except InvalidRecord as e:
            batch.bad.append((rec, str(e)))
    return batch


class Worker:
    """One member of the consumer group; ``run`` until ``stop`` is set (SIGTERM/Ctrl-C)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Backend | None = None,
        engine: Engine | None = None,
        stop: threading.Event | None = None,
        alert_hook: AlertHook | None = None,
        alert_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.backend = backend or load_backend(
            settings.model,
            backend=settings.backend,
            device=settings.device,
            max_length=settings.max_length,
            threads=settings.threads,
        )
        self.engine = engine or make_engine(settings.database_url)
        self.tickers = TickerExtractor.default()
        self.alert_hook = alert_hook
        self.alert_interval_s = alert_interval_s
        self._last_alert_run = 0.0
        self.consumer: Any = None
        self.dead_publisher: DeadLetterPublisher | None = None
        self.state = "starting"
        self.batches = 0
        self.commit_failures = 0
        self.assignments = 0  # partition assignments received; more than one = rebalanced
        self.in_batch = 0  # records of the batch in hand, 0 between batches
        # Partitions assigned by the last rebalance, to restart from their committed offsets.
        self.reseek: set[TopicPartition] = set()
        self._lag_labels: set[tuple[str, str]] = set()

    # -- lifecycle ---------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info("worker state: %s -> %s", self.state, state)
        for s in ("starting", "running", "db-retrying", "stopping"):
            metrics.WORKER_STATE.labels(state=s).set(1 if s == state else 0)
        self.state = state

    def connect(self) -> None:
        s = self.settings
        opts = s.kafka_client_options()
        # A broker may hold a fetch for up to fetch_max_wait_ms (kafka-python: 500 ms) before
        # answering, and a record that arrives meanwhile waits for it (Tansu does; Kafka
        # answers as data arrives). Bounding it by batch_max_wait_ms keeps the latency bound
        # that setting promises; an idle worker pays one empty fetch per interval.
        # bench/bench_e2e.py: p50 publish-to-row 156 -> 42 ms at 40 records/s on Tansu.
        fetch_wait = {"fetch_max_wait_ms": max(s.batch_max_wait_ms, 10)}
        self.consumer = make_consumer(
            s.kafka_bootstrap,
            s.consumer_group,
            s.topics,
            client_options={**opts, **fetch_wait},
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            max_poll_records=s.poll_max_records,
            listener=RebalanceLog(self),
        )
        # Not idempotent: dead letters are at-least-once anyway (a redelivered batch publishes
        # its dead letters again; the table is keyed by source position), and an idempotent
        # producer stalls for its whole delivery timeout on "unknown producer id" when the
        # broker restarts without its state, before the publisher can replace it.
        publisher = Publisher(make_producer(s.kafka_bootstrap, opts, enable_idempotence=False))
        self.dead_publisher = DeadLetterPublisher(publisher, s.topic_deadletter)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.dead_publisher is not None:
            self.dead_publisher.publisher.close()
            self.dead_publisher = None

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT finish the batch in hand, commit it, then leave the group."""

        def _handler(signum: int, _frame: object) -> None:
            if self.in_batch:
                log.info("signal %s: finishing the current batch (%d records), then stopping",
                         signum, self.in_batch)
            else:
                log.info("signal %s: stopping between batches", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def run(self) -> None:
        self.connect()
        self._set_state("running")
        last_lag = 0.0
        try:
            while not self.stop.is_set():
                records = poll_records(
                    self.consumer,
                    timeout_ms=max(self.settings.batch_max_wait_ms, 10),
                    max_records=self.settings.poll_max_records,
                )
                if self.reseek:
                    records = self.restart_from_committed(records)
                if records:
                    self.in_batch = len(records)
                    try:
                        self.handle(records)
                    except BatchAbandoned as e:
                        metrics.BATCHES_ABANDONED.inc()
                        log.warning("%s", e)
                        break
                    finally:
                        self.in_batch = 0
                now = time.monotonic()
                if now - last_lag > 5.0:
                    last_lag = now
                    self._report_lag()
                self._maybe_run_alerts()
        finally:
            self._set_state("stopping")
            self.close()

    # -- one batch ------------------------------------------------------------------------
    def handle(self, records: Sequence[RawRecord]) -> None:
        started = time.perf_counter()
        metrics.RECORDS_CONSUMED.inc(len(records))
        batch = split_records(records, self.settings.max_message_bytes)
        sentiments = self.score([m for _, m in batch.good])
        items: list[ScoredDocument] = []
        for (rec, msg), sent in zip(list(batch.good), sentiments, strict=True):
            item = self.to_scored_document(rec, msg, sent)
            problem = check_item(item)
            if problem is None:
                items.append(item)
            else:  # valid JSON the store cannot hold (e.g. an id over the key length)
                batch.bad.append((rec, f"unstorable: {problem}"))
        try:
            self.checkpoint(batch, items)
        except CommitFailed as e:
            # Steps 1-2 are done: the batch is durable. The group moved on (rebalance, lost
            # membership, restarted broker); whoever owns these partitions now reads from the
            # last committed offset and upserts onto the rows stored here, this worker too
            # for the partitions it keeps (see restart_from_committed). Nothing is lost.
            self.commit_failures += 1
            metrics.COMMIT_FAILURES.inc()
            log.warning(
                "%s; the batch of %d record(s) is stored and will be read again from the "
                "committed offsets after the rebalance (idempotent)",
                e, len(batch),
            )
        metrics.RECORDS_STORED.inc(len(items))
        metrics.RECORDS_DEAD.inc(len(batch.bad))
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self.batches += 1

    def score(self, messages: Sequence[Message]) -> list[Sentiment]:
        """Model batches planned by token budget; the poll loop stays alive between them."""
        if not messages:
            return []
        s = self.settings
        texts = [scoring_text(m, s.max_text_chars) for m in messages]
        lengths = self.backend.token_counts(texts)
        out: list[Sentiment | None] = [None] * len(texts)
        for idx in plan_batches(
            lengths, max_batch_size=s.batch_max_size, max_batch_tokens=s.batch_max_tokens,
            call_cost_tokens=s.batch_call_cost_tokens,
        ):
            t0 = time.perf_counter()
            for i, sent in zip(idx, self.backend.predict([texts[i] for i in idx]), strict=True):
                out[i] = sent
            metrics.INFERENCE_SECONDS.observe(time.perf_counter() - t0)
            self.keepalive()
        return [s for s in out if s is not None]

    def to_scored_document(self, rec: RawRecord, msg: Message, sent: Sentiment) -> ScoredDocument:
        published = naive_utc(msg.published_at)
        event_at = published or datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC).replace(
            tzinfo=None
        )
        mentions = self.tickers.extract(msg.text, title=msg.title, explicit=msg.tickers)
        return ScoredDocument(
            document=DocumentIn(
                source=msg.source,
                external_id=msg.id,
                kind=msg.kind,
                text=msg.text,
                title=msg.title,
                url=msg.url,
                author=msg.author,
                lang=msg.lang,
                published_at=published,
                event_at=event_at,
                extra=msg.extra_fields() or None,
                kafka_topic=rec.topic,
                kafka_partition=rec.partition,
                kafka_offset=rec.offset,
            ),
            score=ScoreIn(
                model_version=self.backend.model_version,
                label=sent.label,
                p_negative=sent.p_negative,
                p_neutral=sent.p_neutral,
                p_positive=sent.p_positive,
                score=sent.score,
            ),
            mentions=[MentionIn(ticker=t, how=how) for t, how in mentions],
        )

    def checkpoint(self, batch: Batch, items: Sequence[ScoredDocument]) -> None:
        """Make the batch durable, then move the group's offsets past it.

        1. Publish the dead letters to the dead-letter topic and flush (a replay may publish
           one again; the table below is keyed by record position, so it stays single).
        2. Commit ONE SQL transaction: documents, scores, mentions and dead letters, retried
           with backoff while the database is unavailable (the poll loop is kept alive).
        3. Commit offsets (last processed + 1 per partition), synchronously.
        On any failure raise and commit nothing further: the records come back and upsert
        onto the rows they already have. Shutdown asked for during step 2 abandons the batch
        (``BatchAbandoned``), offsets untouched.
        """
        dead = [
            DeadLetterIn(
                topic=rec.topic,
                partition=rec.partition,
                offset=rec.offset,
                key=rec.key,
                raw=rec.value or b"",
                reason=reason,
            )
            for rec, reason in batch.bad
        ]
        # Step 1
        if batch.bad and self.dead_publisher is not None:
            for rec, reason in batch.bad:
                self.dead_publisher.publish(rec, reason)
            self.dead_publisher.publisher.flush()
        # Step 2
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(DatabaseUnavailable),
                wait=wait_exponential(multiplier=0.2, max=5.0),
                stop=stop_after_delay(self.settings.db_retry_max_s)
                | stop_when_event_set(self.stop),
                sleep=self.stop.wait,  # a SIGTERM cuts the backoff short
                before_sleep=self._before_db_retry,
                reraise=True,
            ):
                with attempt:
                    save_batch(self.engine, items, dead)
        except DatabaseUnavailable as e:
            if self.stop.is_set():
                raise BatchAbandoned(
                    f"stopping while the database is unavailable ({e}): batch of {len(batch)} "
                    "record(s) abandoned unsaved, offsets not committed; a restarted worker "
                    "reads it again"
                ) from e
            raise
        if self.state == "db-retrying":
            self._set_state("running")
        # Step 3
        if self.consumer is not None:
            commit_offsets(self.consumer, batch.next_offsets())

    def _before_db_retry(self, state: RetryCallState) -> None:
        self._set_state("db-retrying")
        metrics.DB_RETRIES.inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database unavailable (attempt %d): %s; retrying", state.attempt_number, exc)
        self.keepalive()

    def keepalive(self) -> None:
        """Poll with every partition paused so max_poll_interval_ms never expires mid-batch.

        Nothing is fetched while paused; the records in hand keep their offsets.
        """
        if self.consumer is None:
            return
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        self.consumer.pause(*assigned)
        try:
            fetched = self.consumer.poll(timeout_ms=0)
            # Only partitions a rebalance just added can return records here; hand them
            # back (the next poll fetches them again) rather than drop them.
            for tp, recs in fetched.items():
                if recs:
                    self.consumer.seek(tp, recs[0].offset)
        finally:
            self.consumer.resume(*[tp for tp in assigned if tp in self.consumer.assignment()])

    def _report_lag(self) -> None:
        try:
            for (topic, partition), lag in consumer_lag(self.consumer).items():
                metrics.CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
                self._lag_labels.add((topic, str(partition)))
        except Exception as e:  # lag is information, never a reason to stop scoring
            log.debug("lag unavailable: %s", e)

    def restart_from_committed(self, records: list[RawRecord]) -> list[RawRecord]:
        """After a rebalance, each assigned partition restarts from the group's committed
        offset (what the store holds), never from a position kept from before: kafka-python
        keeps positions of partitions a member had and gets back, which skips records when
        a commit was refused in between, or when a restarted in-memory broker recreated the
        topic (its offsets start at 0 again; no committed offset means the beginning).

        Records this poll fetched for those partitions are dropped (they come again).
        """
        pending, self.reseek = self.reseek, set()  # a rebalance meanwhile marks anew
        assigned = self.consumer.assignment()
        parts = [tp for tp in pending if tp in assigned]
        try:
            starts: dict[TopicPartition, int | None] = {
                tp: self.consumer.committed(tp, timeout_ms=10_000) for tp in parts
            }
        except KafkaError as e:  # coordinator not ready yet: next loop tries again
            log.warning("committed offsets unavailable (%s); retrying", e)
            self.reseek |= pending
            return [r for r in records if TopicPartition(r.topic, r.partition) not in pending]
        for tp, offset in starts.items():
            if tp not in self.consumer.assignment():
                continue
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
        log.info("reading from the committed offsets: %s", ", ".join(
            f"{tp.topic}[{tp.partition}]={'start' if o is None else o}"
            for tp, o in sorted(starts.items())
        ) or "no partitions")
        again = {(tp.topic, tp.partition) for tp in parts}
        return [r for r in records if (r.topic, r.partition) not in again]

    def forget_lag(self, keep: set[TopicPartition]) -> None:
        """Drops the lag gauges of partitions this worker no longer owns (another worker
        reports them now)."""
        owned = {(tp.topic, str(tp.partition)) for tp in keep}
        for labels in self._lag_labels - owned:
            metrics.CONSUMER_LAG.remove(*labels)
        self._lag_labels &= owned

    def _maybe_run_alerts(self) -> None:
        if self.alert_hook is None:
            return
        now = time.monotonic()
        if now - self._last_alert_run < self.alert_interval_s:
            return
        self._last_alert_run = now
        try:
            self.alert_hook(self.engine)
        except Exception:  # a broken rule or webhook must never stop scoring
            log.exception("alert evaluation failed")
