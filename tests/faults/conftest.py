"""Fault-injection harness: real worker processes, a cuttable TCP proxy, publishing and the
exactly-once check every fault test ends with, plus the run's summary table.

Each test records one row with ``fault_report.add(...)``; the rows are printed at the end of
the pytest run ("finsent fault suite" section), with the recovery times measured in that run,
and written as JSON to ``$FINSENT_FAULT_REPORT`` when that is set.

Run the suite alone with ``pytest -m fault tests/faults`` (the slowest are also ``slow``).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from finsent.config import Settings, load_settings
from finsent.paths import DEFAULT_MODEL_DIR
from finsent.status import group_lag
from ingest.broker import free_port
from ingest.producer import Publisher, make_producer
from storage.db import make_engine
from storage.models import DeadLetter, Document, Score
from tests.integration.conftest import count, env_for, wait_until

__all__ = [
    "FaultReport",
    "Feeder",
    "TcpProxy",
    "WorkerProc",
    "assert_exactly_once",
    "committed_not_ahead_of_store",
    "count",
    "fault_settings",
    "good_record",
    "publish_good",
    "say",
    "stored_ids",
    "wait_until",
]

# Group timing that makes a restarted worker rejoin in seconds (see common notes).
GROUP_ENV = {"FINSENT_SESSION_TIMEOUT_MS": "2000", "FINSENT_HEARTBEAT_INTERVAL_MS": "300"}


_T0 = time.monotonic()


def say(message: str) -> None:
    """A progress line with the time since the session started; pytest shows these for a
    failed test, which is how a stall in a fault test gets explained."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


# --- settings and the model -----------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_model_dir(request: pytest.FixtureRequest) -> Path:
    """The shipped model (ONNX INT8 on CPU); the fixture-trained tiny model until it ships."""
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        return DEFAULT_MODEL_DIR
    return Path(request.getfixturevalue("tiny_model_dir"))


@pytest.fixture(scope="session")
def fault_backend(fault_model_dir: Path):  # type: ignore[no-untyped-def]
    """The same model loaded once in the test process, for in-process WorkerThreads."""
    from scorer.backends import load_backend

    return load_backend(fault_model_dir, backend="auto", device="cpu", max_length=64)


def fault_settings(
    bootstrap: str, topics: dict[str, str], database_url: str, model_dir: Path, **overrides: object
) -> Settings:
    """Settings for one fault test: its own topics and consumer group, fast group timing."""
    values: dict[str, object] = dict(
        kafka_bootstrap=bootstrap,
        topic_news=topics["news"],
        topic_comments=topics["comments"],
        topic_deadletter=topics["deadletter"],
        consumer_group=f"finsent-fault-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        batch_max_wait_ms=50,
        max_length=64,
        model=model_dir,
        device="cpu",
    )
    values.update(overrides)
    return load_settings(**values)


def worker_env(settings: Settings, **extra: object) -> dict[str, str]:
    """FINSENT_* variables for a worker process: the harness's, the model and any extras."""
    env = env_for(settings)
    env.update(GROUP_ENV)
    env["FINSENT_MODEL"] = str(settings.model)
    env["FINSENT_DEVICE"] = settings.device
    for name in ("max_poll_interval_ms", "poll_max_records", "batch_max_size", "db_retry_max_s"):
        env[f"FINSENT_{name.upper()}"] = str(getattr(settings, name))
    for key, value in extra.items():
        env[f"FINSENT_{key.upper()}"] = str(value)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


# --- worker processes -----------------------------------------------------------------------


class WorkerProc:
    """``python -m finsent.cli worker`` with its own metrics port and log file."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        name: str,
        *,
        alerts: bool = False,
        database_url: str | None = None,
        **extra: object,
    ) -> None:
        self.name = name
        self.metrics_port = free_port()
        env = worker_env(settings, metrics_port=self.metrics_port, **extra)
        if database_url is not None:
            env["FINSENT_DATABASE_URL"] = database_url
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "finsent.cli", "worker"]
        if not alerts:
            cmd.append("--no-alerts")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        """Every sample of the worker's /metrics as ``name{label=value,...}`` -> value;
        empty while the endpoint is not up yet."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as resp:
                body = resp.read().decode()
        except OSError:
            return {}
        return parse_metrics(body)

    def sample(self, name: str, default: float = 0.0) -> float:
        return self.metrics().get(name, default)

    def wait_stored(self, n: float, timeout: float = 180) -> None:
        """Until this process has stored ``n`` records (its own counter) or fails."""

        def done() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            return self.sample("finsent_records_stored_total") >= n

        wait_until(done, timeout, f"{self.name} to store {n:g} records", poll=0.1)

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self._log.close()
        return code

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]


def parse_metrics(body: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:
    """``workers(settings, name, **extra)`` starts a worker process; all are killed at the end
    (a test that wants a clean stop terminates its own and checks the exit code)."""
    started: list[WorkerProc] = []

    def start(settings: Settings, name: str, **kwargs: object) -> WorkerProc:
        w = WorkerProc(settings, tmp_path, name, **kwargs)  # type: ignore[arg-type]
        started.append(w)
        return w

    yield start
    for w in started:
        if w.alive():
            w.kill()


# --- a TCP proxy that can be cut ------------------------------------------------------------


class TcpProxy:
    """Loopback proxy to ``target``. ``cut()`` closes every connection and the listener (new
    connections are refused: ECONNREFUSED); ``restore()`` listens on the same port again.

    Used to take PostgreSQL away from one worker without touching the shared cluster.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0

    def start(self) -> TcpProxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.settimeout(0.1)
        self._listener = sock
        self._accepting.set()
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if not self._accepting.is_set():
                    client.close()
                    upstream.close()
                    return
                self._conns.update((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                with self._lock:
                    if a not in self._conns:
                        return
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            self._drop(a, b)

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._conns.discard(s)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        """Every open connection reset and no new ones accepted."""
        self._accepting.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        self._drop(*conns)

    def restore(self) -> None:
        self.start()

    def close(self) -> None:
        self.cut()


# --- records -------------------------------------------------------------------------------


def good_record(i: int, source: str = "fault") -> dict[str, str]:
    """A short, valid news item or comment (cheap to score)."""
    verbs = ("jumps", "falls", "holds steady", "beats estimates", "misses estimates")
    return {
        "id": f"{source}-{i}",
        "source": source,
        "kind": "comment" if i % 2 else "news",
        "text": f"$MSFT stock {verbs[i % len(verbs)]} after report {i}",
    }


def publish_good(
    publisher: Publisher, settings: Settings, ids: Iterable[int], source: str = "fault"
) -> list[str]:
    """Publishes records ``ids`` (news and comments alternating); returns their external ids."""
    out = []
    for i in ids:
        rec = good_record(i, source)
        topic = settings.topic_comments if i % 2 else settings.topic_news
        publisher.publish_raw(topic, json.dumps(rec).encode(), key=rec["id"].encode())
        out.append(rec["id"])
    publisher.flush()
    return out


class Feeder:
    """Keeps a backlog of unstored records in the topics, so that whatever the test does next
    (a kill, a join, a leave) happens while there is work in flight."""

    def __init__(self, settings: Settings, source: str, chunk: int = 500) -> None:
        self.settings = settings
        self.source = source
        self.chunk = chunk
        self.publisher = new_publisher(settings)
        self.published = 0

    @property
    def ids(self) -> list[str]:
        return [good_record(i, self.source)["id"] for i in range(self.published)]

    def stored(self) -> int:
        return count(self.settings.database_url, Document)

    def top_up(self, backlog: int, limit: int) -> int:
        """Publishes chunks until ``backlog`` records wait unstored (at most ``limit`` in
        all); returns how many are stored."""
        stored = self.stored()
        while self.published < limit and self.published - stored < backlog:
            n = min(self.chunk, limit - self.published)
            publish_good(self.publisher, self.settings,
                         range(self.published, self.published + n), self.source)
            self.published += n
        return stored

    def close(self) -> None:
        self.publisher.close()


def new_publisher(settings: Settings, **kwargs: object) -> Publisher:
    return Publisher(make_producer(settings.kafka_bootstrap), **kwargs)  # type: ignore[arg-type]


# --- checks --------------------------------------------------------------------------------


def stored_ids(url: str, source: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(select(Document.external_id).where(Document.source == source))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()


@dataclass
class Tally:
    sent: int
    stored: int
    duplicated: int
    lost: int
    dead: int
    extra: dict[str, object] = field(default_factory=dict)


def assert_exactly_once(url: str, expected: Iterable[str], source: str) -> Tally:
    """Every expected document of ``source`` stored once, nothing else of that source, one
    score per model version each. ``dead`` counts the whole dead-letter table."""
    expected = list(expected)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ids = list(
                conn.execute(select(Document.external_id).where(Document.source == source))
                .scalars()
                .all()
            )
            per_doc = conn.execute(
                select(Score.document_id, Score.model_version, func.count())
                .join(Document, Document.id == Score.document_id)
                .where(Document.source == source)
                .group_by(Score.document_id, Score.model_version)
            ).all()
            dead = conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    finally:
        engine.dispose()
    dup = len(ids) - len(set(ids))
    lost = sorted(set(expected) - set(ids))
    unexpected = sorted(set(ids) - set(expected))
    multi = [row for row in per_doc if row[2] != 1]
    scored = {row[0] for row in per_doc}
    assert not lost, f"{len(lost)} records lost, e.g. {lost[:5]}"
    assert not unexpected, f"{len(unexpected)} unexpected documents, e.g. {unexpected[:5]}"
    assert dup == 0, f"{dup} duplicated documents"
    assert not multi, f"documents scored more than once per model version: {multi[:5]}"
    assert len(scored) == len(ids), f"{len(ids) - len(scored)} documents without a score"
    return Tally(
        sent=len(expected), stored=len(set(ids)), duplicated=dup, lost=len(lost), dead=dead
    )


def committed_not_ahead_of_store(settings: Settings, source: str) -> dict[tuple[str, int], int]:
    """The delivery promise at one instant: every offset below a partition's committed offset
    is in the store (each record was produced once, so offset -> document is one to one).
    Returns the committed offsets read."""
    committed = committed_offsets(settings)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Document.kafka_topic, Document.kafka_partition, func.count())
                .where(Document.source == source)
                .group_by(Document.kafka_topic, Document.kafka_partition)
            ).all()
    finally:
        engine.dispose()
    stored = {(t, p): n for t, p, n in rows}
    for tp, offset in committed.items():
        assert stored.get(tp, 0) >= offset, (
            f"{tp}: offsets committed up to {offset} but only {stored.get(tp, 0)} stored"
        )
    return committed


def committed_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(request_timeout_ms=5000, **settings.kafka_client_options())
    try:
        got = admin.list_group_offsets({settings.consumer_group: None}).get(
            settings.consumer_group, {}
        )
    finally:
        admin.close()
    return {(tp.topic, tp.partition): m.offset for tp, m in got.items() if m.offset >= 0}


def wait_drained(settings: Settings, timeout: float = 120) -> None:
    """Until the group's committed offsets reach every partition's high watermark."""

    def drained() -> bool:
        try:
            return sum(group_lag(settings).values()) == 0
        except Exception:  # broker briefly unavailable while a test restores it
            return False

    wait_until(drained, timeout, "the group's lag to reach 0")


# --- the summary table ---------------------------------------------------------------------


@dataclass
class FaultRow:
    fault: str
    injected: str
    sent: int
    stored: int
    duplicated: int
    lost: int
    dead: int
    recovery: str


class FaultReport:
    def __init__(self) -> None:
        self.rows: list[FaultRow] = []

    def add(self, fault: str, injected: str, tally: Tally, recovery: str) -> None:
        self.rows.append(
            FaultRow(fault, injected, tally.sent, tally.stored, tally.duplicated, tally.lost,
                     tally.dead, recovery)
        )


_REPORT = FaultReport()


@pytest.fixture
def fault_report() -> FaultReport:
    return _REPORT


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if not _REPORT.rows:
        return
    tr = terminalreporter
    tr.section("finsent fault suite")
    tr.write_line("| fault | how injected | sent | stored | duplicated | lost | dead-lettered "
                  "| recovery |")
    tr.write_line("|---|---|---|---|---|---|---|---|")
    for r in _REPORT.rows:
        tr.write_line(f"| {r.fault} | {r.injected} | {r.sent} | {r.stored} | {r.duplicated} "
                      f"| {r.lost} | {r.dead} | {r.recovery} |")
    out = os.environ.get("FINSENT_FAULT_REPORT")
    if out:
        Path(out).write_text(json.dumps([r.__dict__ for r in _REPORT.rows], indent=1))
