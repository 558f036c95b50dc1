"""Fault 3: the broker stops and starts again on the same port, mid-stream.

Tansu keeps records in memory, so the restart loses the topics, their unconsumed records and
the group's offsets. The test accounts for that the way an operator would: it recreates the
topics and publishes everything again (the store's upsert makes the repeats harmless). The
worker process and the test's one ``Publisher`` keep running: both must reconnect by
themselves and say so in their logs. Dead letters are sent only after the restart, through
the worker's own dead-letter producer. The records are published again in reverse order, so
none sits at its old offset: a worker resuming from positions it held before the restart
would skip records.
"""

from __future__ import annotations

import logging
import time

import pytest

from ingest.broker import EmbeddedBroker
from ingest.topics import ensure_topics
from storage.models import DeadLetter, Document
from tests.faults.conftest import (
    assert_exactly_once,
    count,
    fault_settings,
    new_publisher,
    publish_good,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]

N = 2000
N_BAD = 20
SOURCE = "restart"


def test_broker_restart_on_same_port(  # type: ignore[no-untyped-def]
    sqlite_url, fault_model_dir, workers, fault_report, caplog
):
    caplog.set_level(logging.INFO, logger="ingest.producer")
    broker = EmbeddedBroker().start(timeout=30)
    topics = {"news": "rs.news", "comments": "rs.comments", "deadletter": "rs.deadletter"}

    def create_topics() -> None:
        ensure_topics(broker.bootstrap, [topics["news"], topics["comments"]], 6)
        ensure_topics(broker.bootstrap, [topics["deadletter"]], 1)

    try:
        create_topics()
        s = fault_settings(broker.bootstrap, topics, sqlite_url, fault_model_dir)
        worker = workers(s, "restart-worker")
        publisher = new_publisher(s, topic_partitions=6, retry_timeout_s=60)
        ids = publish_good(publisher, s, range(N // 2), SOURCE)
        wait_until(lambda: count(s.database_url, Document) >= 300, 240, "the first batches")

        broker.stop()
        t_down = time.monotonic()
        stored_at_stop = count(s.database_url, Document)
        say(f"broker stopped with {stored_at_stop} of {N // 2} stored")
        time.sleep(3)  # the worker and the publisher notice the broker is gone
        broker = EmbeddedBroker(port=broker.port).start(timeout=30)
        t_up = time.monotonic()
        create_topics()  # as `finsent broker` does on start
        say(f"broker back on the same port after {t_up - t_down:.1f} s")

        # everything again, newest first: what was stored before is upserted, the rest is
        # new, and no record sits at the offset it had before the restart (a worker that kept
        # its old positions would skip records)
        ids = publish_good(publisher, s, range(N - 1, -1, -1), SOURCE)
        bad_keys = []
        for i in range(N_BAD):
            key = f"bad-{i}".encode()
            publisher.publish_raw(s.topic_news, b'{"id": "broken', key=key)
            bad_keys.append(key)
        publisher.flush()
        assert publisher.reconnects >= 1

        wait_until(
            lambda: count(s.database_url, Document) > stored_at_stop, 180, "storing to resume"
        )
        recovery = time.monotonic() - t_up
        wait_until(
            lambda: count(s.database_url, Document) >= N
            and count(s.database_url, DeadLetter) >= N_BAD,
            240,
            "every record stored and dead-lettered after the restart",
        )
        all_in = time.monotonic() - t_up
        wait_drained(s)
        publisher.close()
        assert worker.alive(), worker.log_tail()
        code = worker.terminate()
        log = worker.log_text()
        assert code == 0, log[-4000:]
    finally:
        broker.stop()

    tally = assert_exactly_once(s.database_url, ids, SOURCE)
    assert tally.dead == N_BAD
    # clear log lines: the worker lost and rejoined its group; the publisher recreated itself
    assert log.count("partition(s) assigned") >= 2, log[-4000:]
    # ... and read the recreated topics from their start, not from positions held before
    assert log.count("reading from the committed offsets") >= 2, log[-4000:]
    producer_log = caplog.text
    assert "recreating the producer" in producer_log
    assert "kafka producer recreated" in producer_log
    fault_report.add(
        "3 broker restart",
        f"Tansu stopped (SIGINT) and restarted on the same port; all {N} records "
        f"re-published in reverse order, {N_BAD} bad ones after the restart",
        tally,
        f"storing again {recovery:.1f} s after the broker is back; everything stored and "
        f"dead-lettered {all_in:.1f} s after",
    )
