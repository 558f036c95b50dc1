"""Fault 2: the store goes away mid-stream, and comes back.

- PostgreSQL: the worker reaches the shared cluster through a loopback TCP proxy owned by the
  test; cutting the proxy resets the worker's connections and refuses new ones for 30 s. The
  cluster itself is never touched (other tests use it).
- SQLite: another connection holds ``BEGIN EXCLUSIVE`` longer than the worker's busy timeout.

While the store is away the worker keeps polling (no eviction), retries with backoff, says so
(state gauge, ``finsent_db_retries_total``, log lines) and commits no offsets: at every check
the group's committed offsets are never ahead of what the store holds. Afterwards it resumes
by itself and every record is stored exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from storage.models import Document
from tests.faults.conftest import (
    TcpProxy,
    WorkerProc,
    assert_exactly_once,
    committed_not_ahead_of_store,
    count,
    fault_settings,
    new_publisher,
    publish_good,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CHUNK = 1000
SOURCE = "outage"


def _state(worker: WorkerProc, state: str) -> bool:
    if not worker.alive():
        raise AssertionError(f"{worker.name} exited:\n{worker.log_tail()}")
    return worker.sample(f"finsent_worker_state{{state={state}}}") == 1


def _run_outage(
    s: Any,
    worker: WorkerProc,
    outage: Callable[[], AbstractContextManager[None]],
    outage_s: float,
) -> tuple[Any, float, dict[str, float]]:
    """Chunk 1 stored, outage with chunk 2 published into it, chunk 3 after it."""
    publisher = new_publisher(s)
    try:
        ids = publish_good(publisher, s, range(CHUNK), SOURCE)
        wait_until(lambda: count(s.database_url, Document) >= 300, 240, "the first batches")
        with outage():
            t_cut = time.monotonic()
            ids += publish_good(publisher, s, range(CHUNK, 2 * CHUNK), SOURCE)
            wait_until(lambda: _state(worker, "db-retrying"), 60, "the worker to report retrying")
            say(f"{worker.name} retrying after {time.monotonic() - t_cut:.1f} s")
            frozen = committed_not_ahead_of_store(s, SOURCE)
            stored = count(s.database_url, Document)
            while time.monotonic() - t_cut < outage_s:
                assert committed_not_ahead_of_store(s, SOURCE) == frozen, "offsets moved"
                assert count(s.database_url, Document) == stored
                assert worker.alive(), worker.log_tail()
                time.sleep(1.0)
            during = worker.metrics()
        t_back = time.monotonic()
        say(f"store back after {t_back - t_cut:.1f} s; {stored} stored during the outage")
        wait_until(lambda: count(s.database_url, Document) > stored, 120, "storing to resume")
        recovery = time.monotonic() - t_back
        wait_until(lambda: _state(worker, "running"), 60, "the worker to report running")
        ids += publish_good(publisher, s, range(2 * CHUNK, 3 * CHUNK), SOURCE)
    finally:
        publisher.close()
    wait_until(lambda: count(s.database_url, Document) >= 3 * CHUNK, 240, "all records stored")
    wait_drained(s)
    committed_not_ahead_of_store(s, SOURCE)
    return ids, recovery, during


def _check_worker_said_so(worker: WorkerProc, during: dict[str, float]) -> None:
    assert during["finsent_db_retries_total"] >= 1
    assert during["finsent_worker_state{state=db-retrying}"] == 1
    assert worker.alive(), worker.log_tail()
    code = worker.terminate()
    log = worker.log_text()
    assert code == 0, log[-4000:]
    assert "worker state: running -> db-retrying" in log
    assert "database unavailable (attempt 1)" in log
    assert "worker state: db-retrying -> running" in log


@pytest.mark.postgres
def test_postgres_unreachable_for_30s(  # type: ignore[no-untyped-def]
    tansu, topic_names, pg_url, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, pg_url, fault_model_dir)
    pg = make_url(pg_url)
    proxy = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432)).start()
    through_proxy = pg.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    worker = workers(s, "pg-outage", database_url=through_proxy)

    @contextmanager
    def cut_proxy():  # type: ignore[no-untyped-def]
        proxy.cut()
        try:
            yield
        finally:
            proxy.restore()

    try:
        ids, recovery, during = _run_outage(s, worker, cut_proxy, outage_s=30)
    finally:
        proxy.close()
    _check_worker_said_so(worker, during)
    assert proxy.connections >= 2, "the worker never reconnected through the proxy"
    tally = assert_exactly_once(s.database_url, ids, SOURCE)
    fault_report.add(
        "2a PostgreSQL unreachable",
        f"TCP proxy cut for 30 s (connections reset, new ones refused); "
        f"retries: {during['finsent_db_retries_total']:.0f}",
        tally,
        f"storing again {recovery:.1f} s after the proxy is back",
    )


def test_sqlite_locked_by_another_writer(  # type: ignore[no-untyped-def]
    tansu, topic_names, sqlite_url, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, sqlite_url, fault_model_dir)
    worker = workers(s, "sqlite-locked")
    path = make_url(sqlite_url).database

    @contextmanager
    def exclusive_lock():  # type: ignore[no-untyped-def]
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    # longer than the worker's busy timeout (10 s), so statements fail and are retried
    ids, recovery, during = _run_outage(s, worker, exclusive_lock, outage_s=15)
    _check_worker_said_so(worker, during)
    tally = assert_exactly_once(s.database_url, ids, SOURCE)
    fault_report.add(
        "2b SQLite locked",
        f"another connection holds BEGIN EXCLUSIVE for 15 s; "
        f"retries: {during['finsent_db_retries_total']:.0f}",
        tally,
        f"storing again {recovery:.1f} s after the lock is released",
    )
