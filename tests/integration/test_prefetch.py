"""While the model scores a batch, the worker keeps fetching: what arrives meanwhile is already
in hand when the batch is done (bounded by ``poll_max_records``), and nothing is lost or
stored twice. Real Tansu, real store, the real model behind a gate that holds the first model
call until the worker has prefetched (or a timeout says it never did)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from finsent.worker import Worker
from scorer.backends import Backend, Sentiment
from storage.models import Document
from tests.faults.conftest import assert_exactly_once, new_publisher, publish_good
from tests.integration.conftest import WorkerThread, count, wait_until

SOURCE = "prefetch"
LATER = 30
BOUND = 10


class GatedBackend:
    """``inner``, whose first model call publishes ``LATER`` records and then waits until the
    worker holds ``BOUND`` of them prefetched; it records the most it ever saw held."""

    def __init__(self, inner: Backend, publish_later: threading.Event) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_version = inner.model_version
        self.max_length = inner.max_length
        self.publish_later = publish_later
        self.worker: Worker | None = None
        self.calls = 0
        self.model_threads: set[str] = set()
        self.held_at_gate = 0
        self.most_held = 0

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return self.inner.token_counts(texts)

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        self.calls += 1
        self.model_threads.add(threading.current_thread().name)
        if self.calls == 1 and self.worker is not None:
            self.publish_later.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(self.worker.prefetched) < BOUND:
                time.sleep(0.02)
            self.held_at_gate = len(self.worker.prefetched)
            settle = time.monotonic() + 0.5  # the buffer must stay bounded while we hold
            while time.monotonic() < settle:
                self.most_held = max(self.most_held, len(self.worker.prefetched))
                time.sleep(0.02)
        return self.inner.predict(texts)


def test_records_arriving_during_scoring_are_prefetched_bounded_and_stored_once(  # type: ignore[no-untyped-def]
    pipeline_settings, pipeline_backend
):
    s = pipeline_settings.model_copy(update={"poll_max_records": BOUND})
    later = threading.Event()
    gated = GatedBackend(pipeline_backend, later)
    publisher = new_publisher(s)
    runner = WorkerThread(s, gated)
    gated.worker = runner.worker
    try:
        with runner:
            ids = publish_good(publisher, s, [0], SOURCE)
            assert later.wait(60), "the first record was never scored"
            ids += publish_good(publisher, s, range(1, LATER + 1), SOURCE)
            wait_until(lambda: count(s.database_url, Document) >= LATER + 1, 120, "all stored")
            worker = runner.worker
            assert worker.commit_failures == 0
    finally:
        publisher.close()
    assert gated.held_at_gate == BOUND, (
        f"only {gated.held_at_gate} of the records published during scoring were prefetched"
    )
    assert gated.most_held == BOUND, "the prefetch buffer grew past poll_max_records"
    assert all(name.startswith("finsent-model") for name in gated.model_threads)
    assert worker.batches >= 1 + LATER // BOUND
    assert_exactly_once(s.database_url, ids, SOURCE)
