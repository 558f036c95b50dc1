"""Pipeline harness: settings for a test's topics and store, a worker thread, waiting helpers."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from finsent.config import Settings, load_settings
from finsent.paths import DEFAULT_MODEL_DIR
from finsent.worker import Worker
from storage.db import make_engine


@pytest.fixture(scope="session")
def pipeline_backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The shipped model's CPU default; a fixture-trained tiny model until one ships."""
    from scorer.backends import load_backend

    model_dir = DEFAULT_MODEL_DIR
    if not (model_dir / "config.json").exists():
        model_dir = request.getfixturevalue("tiny_model_dir")
    return load_backend(model_dir, backend="auto", device="cpu", max_length=64)


@pytest.fixture
def pipeline_settings(tansu, topic_names, db_url) -> Settings:  # type: ignore[no-untyped-def]
    return load_settings(
        kafka_bootstrap=tansu.bootstrap,
        topic_news=topic_names["news"],
        topic_comments=topic_names["comments"],
        topic_deadletter=topic_names["deadletter"],
        consumer_group=f"finsent-test-{uuid.uuid4().hex[:8]}",
        database_url=db_url,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        batch_max_wait_ms=50,
        max_length=64,
    )


def env_for(settings: Settings) -> dict[str, str]:
    """The same settings as FINSENT_* variables, for CLI subprocesses."""
    env = dict(os.environ)
    for name in (
        "kafka_bootstrap",
        "topic_news",
        "topic_comments",
        "topic_deadletter",
        "consumer_group",
        "database_url",
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "batch_max_wait_ms",
        "max_length",
    ):
        env[f"FINSENT_{name.upper()}"] = str(getattr(settings, name))
    return env


def run_cli(
    settings: Settings, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finsent.cli", *args],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerThread:
    """A real Worker in a thread of the test process (sharing the loaded model)."""

    def __init__(self, settings: Settings, backend) -> None:  # type: ignore[no-untyped-def]
        self.stop = threading.Event()
        self.worker = Worker(settings, backend=backend, stop=self.stop)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as e:  # surfaced by the test
            self.error = e

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


def wait_until(pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def count(url: str, model, where=None) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stmt = select(func.count()).select_from(model)
            if where is not None:
                stmt = stmt.where(where)
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()


def stocknet_rows(data_dir: Path, limit: int) -> list[dict[str, str]]:
    with gzip.open(
        data_dir / "stocknet" / "stocknet_tweets_raw.csv.gz", "rt", encoding="utf-8"
    ) as f:
        reader = csv.DictReader(f)
        return [row for _, row in zip(range(limit), reader, strict=False)]


@pytest.fixture
def worker_thread(pipeline_settings, pipeline_backend) -> Iterator[Callable[..., WorkerThread]]:  # type: ignore[no-untyped-def]
    def make(settings: Settings | None = None) -> WorkerThread:
        return WorkerThread(settings or pipeline_settings, pipeline_backend)

    yield make
