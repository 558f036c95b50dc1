"""Harness for the pipeline benchmarks: a real Tansu broker, a fresh store, real
``finsent worker`` processes, and the committed rows read back with their timestamps.

Timing comes from the store itself: ``documents.ingested_at`` is the UTC instant the worker's
``save_batch`` began the batch's transaction (one value per batch), and a watcher thread
notes when each row first becomes visible to another connection (after COMMIT). The first is
exact but a little early; the second includes the commit but is late by up to its poll
interval. Both are reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from finsent.config import Settings, load_settings
from ingest.broker import EmbeddedBroker
from ingest.producer import Publisher, make_producer
from ingest.topics import ensure_topics
from storage.db import make_engine, upgrade

PG_ADMIN_URL = os.environ.get(
    "FINSENT_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# --- broker and store ---------------------------------------------------------------------


@contextmanager
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@contextmanager
def store(kind: str) -> Iterator[str]:
    """A fresh store at the schema head; SQLite in a temp folder, or a new PostgreSQL
    database created here and dropped (WITH FORCE) on exit."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="finsent-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    if kind != "postgres":
        raise ValueError(f"unknown store {kind!r}")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"finsent_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_settings(bootstrap: str, database_url: str, partitions: int = 6,
                   **overrides: Any) -> Settings:
    """Settings for one benchmark: unique topics and group, the shipped defaults otherwise,
    except a short session timeout so that group joins take seconds, not tens of seconds."""
    tag = uuid.uuid4().hex[:8]
    s = load_settings(
        kafka_bootstrap=bootstrap,
        topic_news=f"bench{tag}.news",
        topic_comments=f"bench{tag}.comments",
        topic_deadletter=f"bench{tag}.deadletter",
        consumer_group=f"bench-{tag}",
        database_url=database_url,
        topic_partitions=partitions,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        **overrides,
    )
    ensure_topics(bootstrap, s.topics, partitions)
    ensure_topics(bootstrap, [s.topic_deadletter], 1)
    return s


# --- records ------------------------------------------------------------------------------


def record(i: int, text_: str, source: str, sent_at: float | None = None) -> tuple[bytes, bytes]:
    """(key, value) of one schema-v1 comment; ``sent_at`` (epoch seconds) travels as an extra
    field, which the worker keeps in ``documents.extra``."""
    msg: dict[str, Any] = {"id": f"{source}-{i}", "source": source, "kind": "comment",
                           "text": text_}
    if sent_at is not None:
        msg["sent_at"] = sent_at
    return f"{source}:{source}-{i}".encode(), json.dumps(msg).encode()


def preload(bootstrap: str, topic: str, texts: Sequence[str], source: str,
            start: int = 0) -> float:
    """Publishes ``texts`` as fast as the client goes; returns the seconds it took."""
    t0 = time.perf_counter()
    with Publisher(make_producer(bootstrap, linger_ms=20, batch_size=256 * 1024)) as pub:
        for i, t in enumerate(texts, start):
            key, value = record(i, t, source)
            pub.publish_raw(topic, value, key)
    return time.perf_counter() - t0


def publish_at_rate(bootstrap: str, topic: str, texts: Sequence[str], source: str,
                    rate: float) -> dict[str, float]:
    """One record every 1/rate s (absolute schedule: a late send does not shift the rest),
    each carrying its send time. Returns what rate was really achieved."""
    interval = 1.0 / rate
    # linger 5 ms: the producer sends a request per 5 ms, not per record (a producer's usual
    # setting, and less CPU taken from the worker on a shared machine); it is in the latency.
    with Publisher(make_producer(bootstrap, linger_ms=5)) as pub:
        t0 = time.perf_counter()
        late = 0
        for i, t in enumerate(texts):
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -interval:
                late += 1
            key, value = record(i, t, source, sent_at=time.time())
            pub.publish_raw(topic, value, key)
        sent_s = time.perf_counter() - t0
    return {"target_rate": round(rate, 1), "achieved_rate": round(len(texts) / sent_s, 1),
            "late_sends": late}


# --- the worker process ------------------------------------------------------------------


def worker_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("kafka_bootstrap", "topic_news", "topic_comments", "topic_deadletter",
                 "consumer_group", "database_url", "session_timeout_ms",
                 "heartbeat_interval_ms", "topic_partitions", "batch_max_wait_ms",
                 "batch_max_size", "batch_max_tokens", "batch_call_cost_tokens",
                 "poll_max_records", "max_length", "backend", "threads"):
        env[f"FINSENT_{name.upper()}"] = str(getattr(s, name))
    env["FINSENT_DEVICE"] = "cpu"
    env["FINSENT_LOG_LEVEL"] = "WARNING"
    env.setdefault("PYTHONPATH", str(ROOT))
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@dataclass
class WorkerProcess:
    """``finsent worker --no-alerts`` as a child process."""

    settings: Settings
    proc: subprocess.Popen[bytes] | None = None
    log: Any = None

    def start(self) -> WorkerProcess:
        cmd = [sys.executable, "-m", "finsent.cli", "worker", "--no-alerts"]
        self.log = tempfile.TemporaryFile(prefix="finsent-bench-worker-")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=worker_env(self.settings), cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far (all its threads)."""
        return cpu_seconds(self.pid)

    def rss_kb(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                out[line.split(":")[0]] = int(line.split()[1])
        return out

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.output()}")

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-3000:]

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM: the worker commits the batch in hand and leaves the group."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def workers(settings: Settings, count: int = 1) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(settings).start() for _ in range(count)]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def group_members(s: Settings) -> tuple[str, int]:
    """(state, member count) of the benchmark's consumer group."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    # Tansu answers DescribeGroups with authorized-operation bits kafka-python cannot name
    # (a ValueError); the benchmark needs state and members only.
    admin._process_acl_operations = lambda obj: obj  # type: ignore[method-assign]
    try:
        desc = admin.describe_groups([s.consumer_group]).get(s.consumer_group) or {}
        return str(desc.get("group_state", desc.get("state", "?"))), len(desc.get("members") or [])
    finally:
        admin.close()


# --- reading the store back ----------------------------------------------------------------


def epoch(ts: datetime) -> float:
    """A naive-UTC timestamp from the store as epoch seconds."""
    return ts.replace(tzinfo=UTC).timestamp()


def doc_count(engine: Engine, source: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM documents WHERE source = :s"),
                                {"s": source}).scalar_one())


def max_id(engine: Engine) -> int:
    """Rows in a fresh store with one source: ``max(id)`` reads one index entry, where
    ``count(*)`` would scan (and steal CPU from the worker on a 500k-row table)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM documents")).scalar_one())


def wait_for_rows(engine: Engine, source: str, n: int, timeout: float,
                  procs: Sequence[WorkerProcess] = (), every: float = 0.5) -> float:
    """Blocks until ``n`` documents of ``source`` are committed; returns the wall seconds."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while True:
        got = doc_count(engine, source)
        if got >= n:
            return time.perf_counter() - t0
        for p in procs:
            p.check_alive()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{got}/{n} rows of {source} after {timeout:.0f}s")
        time.sleep(every)


def ingest_times(engine: Engine, source: str) -> list[tuple[float, Any]]:
    """(ingested_at as epoch seconds, extra) of every document of ``source``."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ingested_at, extra FROM documents WHERE source = :s"),
                            {"s": source}).all()
    out = []
    for ts, extra in rows:
        if isinstance(ts, str):  # SQLite through a plain text() query
            ts = datetime.fromisoformat(ts)
        if isinstance(extra, str):
            extra = json.loads(extra)
        out.append((epoch(ts), extra))
    return out


def batch_rate(times: Sequence[float]) -> dict[str, float]:
    """Records/s between the first and the last batch commit, first batch excluded (it
    carries the warm-up: model load, group join, the first ONNX Runtime run)."""
    batches: dict[float, int] = {}
    for t in times:
        batches[t] = batches.get(t, 0) + 1
    stamps = sorted(batches)
    if len(stamps) < 2:
        return {"records_per_s": float("nan"), "batches": len(stamps)}
    counted = sum(batches[t] for t in stamps[1:])
    span = stamps[-1] - stamps[0]
    return {"records_per_s": round(counted / span, 1), "batches": len(stamps),
            "records_timed": counted, "seconds": round(span, 2),
            "mean_batch_records": round(len(times) / len(stamps), 1)}


@dataclass
class RowWatcher:
    """Notes when each new row of ``source`` first becomes visible (i.e. after COMMIT)."""

    url: str
    source: str
    every_s: float = 0.025
    seen: dict[int, float] = field(default_factory=dict)
    extras: dict[int, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RowWatcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        engine = make_engine(self.url)
        last = 0
        q = text("SELECT id, extra FROM documents WHERE id > :last AND source = :s ORDER BY id")
        try:
            while not self._stop.is_set():
                with engine.connect() as conn:
                    rows = conn.execute(q, {"last": last, "s": self.source}).all()
                now = time.time()
                for rid, extra in rows:
                    self.seen[rid] = now
                    self.extras[rid] = json.loads(extra) if isinstance(extra, str) else extra
                    last = max(last, rid)
                self._stop.wait(self.every_s)
        finally:
            engine.dispose()

    def latencies(self) -> list[float]:
        return [self.seen[i] - float(self.extras[i]["sent_at"]) for i in self.seen
                if self.extras[i] and "sent_at" in self.extras[i]]
