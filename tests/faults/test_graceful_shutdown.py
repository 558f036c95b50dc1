"""Fault 7: SIGTERM while a worker is in the middle of a batch.

1. SIGTERM while a batch is being scored: the worker finishes it, commits it and exits 0.
   The offsets it committed match the store exactly, so the next worker reads exactly the
   records not stored yet: no loss, and no record read twice.
2. SIGTERM while the batch cannot be saved (SQLite held by another writer): the worker stops
   retrying, abandons the batch without committing its offsets and exits 0 at once instead of
   waiting out ``db_retry_max_s``; the next worker stores it.
"""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.db import make_engine
from storage.models import Document
from tests.faults.conftest import (
    Tally,
    WorkerProc,
    assert_exactly_once,
    committed_offsets,
    count,
    fault_settings,
    new_publisher,
    publish_good,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]

N = 4000
SOURCE = "shutdown"


def _stored_per_partition(url: str) -> dict[tuple[str, int], int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Document.kafka_topic, Document.kafka_partition, func.count())
                .where(Document.source == SOURCE)
                .group_by(Document.kafka_topic, Document.kafka_partition)
            ).all()
    finally:
        engine.dispose()
    return {(t, p): n for t, p, n in rows}


def _in_batch(worker: WorkerProc) -> bool:
    """Records polled but neither stored nor dead-lettered yet: a batch is in hand."""
    if not worker.alive():
        raise AssertionError(f"{worker.name} exited:\n{worker.log_tail()}")
    m = worker.metrics()
    stored = m.get("finsent_records_stored_total", 0) + m.get(
        "finsent_records_deadlettered_total", 0
    )
    return m.get("finsent_records_consumed_total", 0) > stored


def test_sigterm_mid_batch_then_restart_continues_exactly(  # type: ignore[no-untyped-def]
    tansu, topic_names, sqlite_url, fault_model_dir, workers, fault_report
):
    # big polls make a batch last a few seconds, so the signal lands inside one
    s = fault_settings(
        tansu.bootstrap, topic_names, sqlite_url, fault_model_dir, poll_max_records=1000
    )
    publisher = new_publisher(s)
    try:
        ids = publish_good(publisher, s, range(N), SOURCE)
    finally:
        publisher.close()

    # 1. SIGTERM inside a batch that is being scored
    first = workers(s, "first")
    first.wait_stored(1)
    wait_until(lambda: _in_batch(first), 120, "the first worker to be inside a batch", 0.02)
    in_hand = first.metrics()
    t_term = time.monotonic()
    code = first.terminate()
    stop_s = time.monotonic() - t_term
    log = first.log_text()
    assert code == 0, log[-4000:]
    batch = re.search(r"finishing the current batch \((\d+) records\)", log)
    assert batch, log[-4000:]
    assert "worker stopped after" in log
    stored_1 = count(s.database_url, Document)
    assert stored_1 >= in_hand["finsent_records_consumed_total"], (
        "the batch in hand at SIGTERM was not finished and stored"
    )
    # offsets committed == what is stored, partition by partition
    committed = committed_offsets(s)
    assert committed == _stored_per_partition(s.database_url)
    say(f"SIGTERM mid-batch: exit 0 after {stop_s:.1f} s with {stored_1} stored")

    # 2. SIGTERM while the store is locked: the batch is abandoned, offsets untouched
    second = workers(s, "second")
    wait_until(lambda: count(s.database_url, Document) > stored_1, 180, "the second worker")
    consumed_at_restart = None
    path = make_url(s.database_url).database
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        wait_until(
            lambda: second.sample("finsent_worker_state{state=db-retrying}") == 1,
            60, "the second worker to retry the store",
        )
        stored_2 = count(s.database_url, Document)
        committed_2 = committed_offsets(s)
        t_term = time.monotonic()
        code = second.terminate(timeout=60)
        abandon_s = time.monotonic() - t_term
        consumed_at_restart = stored_2
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    log = second.log_text()
    assert code == 0, log[-4000:]
    assert "abandoned unsaved, offsets not committed" in log, log[-4000:]
    assert committed_offsets(s) == committed_2 == _stored_per_partition(s.database_url)
    say(f"SIGTERM while locked: exit 0 after {abandon_s:.1f} s, {stored_2} stored")

    # 3. the next worker reads exactly what is not stored, and stores it
    third = workers(s, "third")
    t_restart = time.monotonic()
    wait_until(lambda: count(s.database_url, Document) > consumed_at_restart, 180, "storing")
    resume_s = time.monotonic() - t_restart
    wait_until(lambda: count(s.database_url, Document) >= N, 240, "every record stored")
    wait_drained(s)
    assert third.sample("finsent_records_consumed_total") == N - consumed_at_restart, (
        "the restarted worker read records again that were already committed"
    )
    assert third.terminate() == 0, third.log_tail()
    tally: Tally = assert_exactly_once(s.database_url, ids, SOURCE)
    fault_report.add(
        "7 graceful shutdown",
        f"SIGTERM inside a {batch.group(1)}-record batch (exit 0 after {stop_s:.1f} s), "
        f"then SIGTERM while SQLite is locked (batch abandoned, exit 0 after {abandon_s:.1f} s)",
        tally,
        f"restarted worker storing {resume_s:.1f} s after start; read exactly the "
        f"{N - consumed_at_restart} unstored records",
    )
