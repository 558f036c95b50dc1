"""Operability: what an operator sees of a running pipeline.

A worker process with its Prometheus endpoint (``FINSENT_METRICS_PORT``) and alert rules on;
records (some bad) published before it starts. ``finsent status`` first shows the backlog as
lag, then, once the worker has caught up: no lag, the documents, the throughput, the last
error (the newest dead letter) and the open alerts. The endpoint, read over HTTP, exposes the
records consumed, stored and dead-lettered, batch size and latency histograms, model time,
lag per partition, database retries and the worker's state.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from storage.models import Alert, DeadLetter, Document
from tests.faults.conftest import (
    count,
    fault_settings,
    new_publisher,
    parse_metrics,
    publish_good,
    wait_drained,
    wait_until,
)
from tests.integration.conftest import run_cli

pytestmark = [pytest.mark.fault]

N = 500
N_BAD = 20
SOURCE = "ops"


def _status(s) -> dict:  # type: ignore[no-untyped-def]
    out = run_cli(s, "status", "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_metrics_endpoint_and_status_of_a_running_pipeline(  # type: ignore[no-untyped-def]
    tansu, topic_names, sqlite_url, fault_model_dir, workers
):
    s = fault_settings(tansu.bootstrap, topic_names, sqlite_url, fault_model_dir)
    publisher = new_publisher(s)
    try:
        publish_good(publisher, s, range(N), SOURCE)
        for i in range(N_BAD):
            publisher.publish_raw(s.topic_news, b"{not json %d" % i, key=b"bad-%d" % i)
        publisher.flush()
    finally:
        publisher.close()

    before = _status(s)
    assert before["kafka"]["total_lag"] == N + N_BAD, before
    assert len(before["kafka"]["lag"]) == 2 * 6
    assert before["store"]["documents"] == 0
    # a market-wide rule that any stream breaks, so that an alert opens
    rule = run_cli(s, "rules", "add", "ops-always", "--kind", "mean_above", "--threshold",
                   "-0.99", "--scope", "market", "--min-count", "5")
    assert rule.returncode == 0, rule.stderr

    worker = workers(s, "ops-worker", alerts=True)
    wait_until(
        lambda: count(s.database_url, Document) >= N and count(s.database_url, DeadLetter) >= N_BAD,
        240, "the backlog to be stored",
    )
    wait_drained(s)
    wait_until(lambda: count(s.database_url, Alert) >= 1, 60, "an alert to open")

    def lag_reported() -> bool:
        m = worker.metrics()
        lags = {k: v for k, v in m.items() if k.startswith("finsent_consumer_lag{")}
        return len(lags) == 12 and not any(lags.values())

    wait_until(lag_reported, 60, "lag 0 reported for all 12 partitions")

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics",
                                timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        m = parse_metrics(resp.read().decode())
    assert m["finsent_records_consumed_total"] == N + N_BAD
    assert m["finsent_records_stored_total"] == N
    assert m["finsent_records_deadlettered_total"] == N_BAD
    assert m["finsent_batch_size_count"] >= 1
    assert m["finsent_batch_size_sum"] == N + N_BAD
    assert m["finsent_batch_size_bucket{le=+Inf}"] == m["finsent_batch_size_count"]
    assert m["finsent_batch_seconds_count"] == m["finsent_batch_size_count"]
    assert m["finsent_batch_seconds_sum"] > 0
    assert m["finsent_inference_seconds_count"] >= 1
    assert m["finsent_inference_seconds_sum"] > 0
    for topic in (s.topic_news, s.topic_comments):
        for p in range(6):
            assert m[f"finsent_consumer_lag{{partition={p},topic={topic}}}"] == 0
    assert m["finsent_db_retries_total"] == 0
    assert m["finsent_worker_state{state=running}"] == 1
    assert m["finsent_worker_state{state=db-retrying}"] == 0
    assert m["finsent_partitions_assigned"] == 12
    assert m["finsent_commit_failures_total"] == 0

    after = _status(s)
    assert after["kafka"]["total_lag"] == 0
    assert set(after["kafka"]["lag"]) == set(before["kafka"]["lag"])
    store = after["store"]
    assert store["documents"] == N and store["scores"] == N
    assert store["dead_letters"] == N_BAD
    assert store["scored_per_s_5min"] > 0
    assert "json" in store["last_dead_letter"]["reason"].lower()
    assert store["open_alerts"] >= 1

    text = run_cli(s, "status", timeout=120)
    assert text.returncode == 0, text.stderr
    for row in ("kafka.total_lag", "store.scored_per_s_5min", "store.last_dead_letter",
                "store.open_alerts", "store.dead_letters"):
        assert row in text.stdout, text.stdout
    assert worker.terminate() == 0, worker.log_tail()
