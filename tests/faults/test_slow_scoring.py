"""Fault 5: the model is slower than the group's patience.

A real backend wrapped to sleep before every model batch; ``max_poll_interval_ms`` is 3 s while
one poll's records take about 8 s of model time (13 model batches of 16 records, 0.6 s each).
The worker keeps its membership alive between model batches (``Worker.keepalive``), so the
group never evicts it: one partition assignment for the whole run, no refused commit, every
record stored once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from scorer.backends import Backend, Sentiment
from storage.models import Document
from tests.faults.conftest import (
    assert_exactly_once,
    count,
    fault_settings,
    new_publisher,
    publish_good,
    wait_drained,
    wait_until,
)
from tests.integration.conftest import WorkerThread

pytestmark = [pytest.mark.fault]

N = 600
DELAY_S = 0.6
SOURCE = "slow"


class SlowBackend:
    """``inner`` with ``delay_s`` of extra model time per batch."""

    def __init__(self, inner: Backend, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.name = inner.name
        self.model_version = inner.model_version
        self.max_length = inner.max_length
        self.batches = 0
        self.model_s = 0.0

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.inner.token_counts(texts)

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        t0 = time.monotonic()
        time.sleep(self.delay_s)
        out = self.inner.predict(texts)
        self.batches += 1
        self.model_s += time.monotonic() - t0
        return out


def test_slow_model_never_gets_the_worker_evicted(  # type: ignore[no-untyped-def]
    tansu, topic_names, sqlite_url, fault_model_dir, fault_backend, fault_report
):
    s = fault_settings(
        tansu.bootstrap, topic_names, sqlite_url, fault_model_dir,
        max_poll_interval_ms=3000, poll_max_records=200, batch_max_size=16,
    )
    slow = SlowBackend(fault_backend, DELAY_S)
    assert isinstance(slow, Backend)
    publisher = new_publisher(s)
    try:
        ids = publish_good(publisher, s, range(N), SOURCE)
    finally:
        publisher.close()
    runner = WorkerThread(s, slow)
    started = time.monotonic()
    with runner:
        wait_until(lambda: count(s.database_url, Document) >= N, 240, "every record stored")
        wait_drained(s)
        worker = runner.worker
        assert worker.assignments == 1, "the group rebalanced: the worker was evicted"
        assert worker.commit_failures == 0
    elapsed = time.monotonic() - started
    polls = worker.batches
    # the premise: a poll's model time was well past max_poll_interval_ms
    assert slow.model_s / polls > 2 * s.max_poll_interval_ms / 1000
    tally = assert_exactly_once(s.database_url, ids, SOURCE)
    fault_report.add(
        "5 slow scoring",
        f"backend sleeps {DELAY_S} s per model batch: {slow.model_s / polls:.1f} s of model "
        f"time per poll vs max_poll_interval 3 s ({polls} polls in {elapsed:.0f} s)",
        tally,
        "n/a: 1 assignment, 0 refused commits (never evicted)",
    )
