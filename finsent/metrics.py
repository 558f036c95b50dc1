"""Prometheus metrics of a worker; `finsent status` and the endpoint read the same numbers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter("finsent_records_consumed_total", "Records polled from Kafka.")
RECORDS_STORED = Counter("finsent_records_stored_total", "Records stored with a score.")
RECORDS_DEAD = Counter("finsent_records_deadlettered_total", "Records sent to the dead letters.")
DB_RETRIES = Counter("finsent_db_retries_total", "Database transaction retries.")
BATCH_SIZE = Histogram(
    "finsent_batch_size",
    "Records per committed batch.",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1024),
)
BATCH_SECONDS = Histogram(
    "finsent_batch_seconds",
    "Poll-to-commit time of one batch.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFERENCE_SECONDS = Histogram(
    "finsent_inference_seconds",
    "Model time of one model batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CONSUMER_LAG = Gauge(
    "finsent_consumer_lag", "Records behind the high watermark.", ["topic", "partition"]
)
WORKER_STATE = Gauge("finsent_worker_state", "1 for the worker's current state.", ["state"])
COMMIT_FAILURES = Counter(
    "finsent_commit_failures_total",
    "Offset commits refused after the batch was stored (rebalance, group lost); "
    "its records are read again and upsert onto the rows they have.",
)
REBALANCES = Counter(
    "finsent_rebalances_total", "Partition assignments received after the first one."
)
PARTITIONS_ASSIGNED = Gauge("finsent_partitions_assigned", "Partitions this worker owns now.")
BATCHES_ABANDONED = Counter(
    "finsent_batches_abandoned_total",
    "Batches given up unsaved at shutdown while the database was unavailable "
    "(offsets not committed: they are read again after a restart).",
)
