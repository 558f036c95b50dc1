"""`finsent up`: every component of the product on embedded defaults, supervised.

Children are separate processes (as in production, where each is a container); a worker that
dies is restarted, and Ctrl-C stops all of them, newest first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console

from finsent.config import Settings

console = Console(stderr=True)


@dataclass
class Child:
    """A supervised process: `finsent <args>` with the stack's environment."""

    name: str
    args: list[str]
    where: str
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "finsent.cli", *self.args], env=env)


def prepare_store(settings: Settings) -> None:
    """Migrations, the ticker reference table and the default alert rules."""
    from alerts.defaults import install_default_rules
    from scorer.tickers import reference_rows
    from storage.db import make_engine, upgrade
    from storage.writes import upsert_tickers

    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    upsert_tickers(engine, reference_rows())
    install_default_rules(engine)
    engine.dispose()


def worker_threads(threads: int, workers: int, cores: int | None) -> int:
    """Inference threads per worker: the explicit setting, else the cores shared out.

    Several workers each taking every core would fight over them; on 2 cores, 2 workers x 1
    thread ran 1.45x one worker x 2 threads (bench/bench_scaleout.py, docs/benchmarks.md).
    """
    if threads > 0:
        return threads
    return max(1, (cores or 1) // max(1, workers))


def run_stack(settings: Settings, *, port: int, workers: int, rate: float, dashboard: bool) -> None:
    from ingest.broker import EmbeddedBroker
    from ingest.topics import ensure_topics

    prepare_store(settings)
    console.print(f"[bold]store[/]      {settings.database_url} (migrated)")
    broker = EmbeddedBroker(port=port or _preferred_port(settings))
    broker.start()
    console.print(f"[bold]broker[/]     kafka://{broker.bootstrap} (embedded Tansu, in-memory)")
    if broker.bootstrap != settings.kafka_bootstrap:
        console.print(f"           other shells: export FINSENT_KAFKA_BOOTSTRAP={broker.bootstrap}")
    # a supervisor's SIGTERM stops the children as Ctrl-C does, instead of orphaning them
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    topics = [*settings.topics, settings.topic_deadletter]
    ensure_topics(
        broker.bootstrap, topics, settings.topic_partitions, settings.kafka_client_options()
    )
    console.print(
        f"[bold]topics[/]     {', '.join(topics)} ({settings.topic_partitions} partitions)"
    )
    env = dict(os.environ)
    env.update(
        FINSENT_KAFKA_BOOTSTRAP=broker.bootstrap,
        FINSENT_DATABASE_URL=settings.database_url,
        FINSENT_THREADS=str(worker_threads(settings.threads, workers, os.cpu_count())),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    children: list[Child] = []
    for i in range(workers):
        mport = 9300 + i
        children.append(
            Child(
                f"worker-{i + 1}",
                ["worker", "--metrics-port", str(mport)],
                f"group {settings.consumer_group}, metrics http://127.0.0.1:{mport}/metrics",
            )
        )
    if dashboard:
        children.append(
            Child(
                "dashboard",
                ["dashboard", "--port", str(settings.dashboard_port)],
                f"http://127.0.0.1:{settings.dashboard_port}",
            )
        )
    if rate > 0:
        children.append(
            Child("demo", ["simulate", "--rate", str(rate)], f"{rate:g} msg/s to {topics[0]}")
        )
    for child in children:
        child.start(env)
        console.print(f"[bold]{child.name:<10}[/] {child.where} (pid {child.proc.pid})")  # type: ignore[union-attr]
    console.print('Ready. Try: finsent sql "select count(*) from scores". Ctrl-C stops everything.')
    try:
        _supervise(children, env)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        # a second Ctrl-C must not cut the orderly stop short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_all(children)
        broker.stop()
        console.print("all components stopped")


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _preferred_port(settings: Settings) -> int | None:
    """The configured bootstrap's port when it is loopback and free, so `finsent status` and
    `finsent sql` in another shell find the broker with no extra setting; else any free port."""
    from ingest.broker import port_in_use

    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    loopback = host in ("127.0.0.1", "localhost") and port.isdigit()
    if loopback and not port_in_use("127.0.0.1", int(port)):
        return int(port)
    return None


def _supervise(children: list[Child], env: dict[str, str]) -> None:
    while True:
        time.sleep(1.0)
        for child in children:
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if not child.restart or child.restarts >= 5:
                console.print(f"[red]{child.name} exited with {code}; not restarting[/]")
                child.proc = None
                continue
            child.restarts += 1
            console.print(f"[yellow]{child.name} exited with {code}; restarting[/]")
            child.start(env)


def _stop_all(children: list[Child]) -> None:
    for child in reversed(children):
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in reversed(children):
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
