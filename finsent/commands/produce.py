"""`finsent broker`, `topics create`, `replay`, `simulate` and `feed`: getting records onto Kafka.

User mistakes (missing file, unknown format, bad --map, taken port) surface as ``IngestError``,
which ``finsent.cli.main`` prints as one line with exit code 2. Ctrl-C and SIGTERM stop the
long-running commands cleanly: what was already sent is flushed first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from finsent.config import Settings, load_settings

log = logging.getLogger("finsent")

BOOTSTRAP_HELP = "Kafka bootstrap servers (FINSENT_KAFKA_BOOTSTRAP)."
Bootstrap = Annotated[str | None, typer.Option("--bootstrap", help=BOOTSTRAP_HELP)]


def register(app: typer.Typer) -> None:
    """Adds the producer-side commands to the finsent app."""
    app.command("broker")(broker)
    topics = typer.Typer(help="Kafka topics of finsent.", no_args_is_help=True)
    topics.command("create")(topics_create)
    app.add_typer(topics, name="topics")
    app.command("replay")(replay)
    app.command("simulate")(simulate)
    app.command("feed")(feed)


# -- shared helpers -------------------------------------------------------------------------


def _settings(**overrides: object) -> Settings:
    """Settings with CLI overrides (a bad value is one line, exit 2: see load_settings)."""
    return load_settings(**overrides)


def _quiet_kafka() -> None:
    """kafka-python logs every connection at INFO; keep its warnings only."""
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _all_topics(settings: Settings) -> list[str]:
    return [settings.topic_news, settings.topic_comments, settings.topic_deadletter]


def _kind_topics(settings: Settings) -> dict[str, str]:
    return {"news": settings.topic_news, "comment": settings.topic_comments}


def _publisher(settings: Settings):  # type: ignore[no-untyped-def]
    """Topics ensured first (so Kafka does not auto-create them with 1 partition), then a
    publisher that recreates them if an in-memory broker restarted."""
    from ingest.producer import Publisher
    from ingest.topics import ensure_topics

    options = settings.kafka_client_options()
    ensure_topics(
        settings.kafka_bootstrap, _all_topics(settings), settings.topic_partitions, options
    )
    return Publisher.connect(
        settings.kafka_bootstrap, options, topic_partitions=settings.topic_partitions
    )


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event instead of raising, so sends are flushed, not cut."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _handler(signum: int, _frame: object) -> None:
        if stop.is_set():  # second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        log.info("signal %s: stopping after what is in flight", signum)
        stop.set()

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# -- broker and topics ----------------------------------------------------------------------


def broker(
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on; 0 = a free one. Default: the port of "
            "FINSENT_KAFKA_BOOTSTRAP (9092)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    create_topics: Annotated[
        bool,
        typer.Option("--create-topics/--no-create-topics", help="Create finsent's topics."),
    ] = True,
) -> None:
    """Run the embedded Tansu broker (in memory) in the foreground; Ctrl-C stops it."""
    from ingest.broker import EmbeddedBroker
    from ingest.exceptions import BrokerError
    from ingest.topics import ensure_topics

    _quiet_kafka()
    settings = _settings()
    if port is None:
        port = _port_of(settings.kafka_bootstrap)
    broker = EmbeddedBroker(port=port or None, host=host)
    with _stop_on_signals() as stop:
        broker.start()
        try:
            typer.echo(f"broker     kafka://{broker.bootstrap} (embedded Tansu, in memory)")
            if broker.bootstrap != settings.kafka_bootstrap:
                typer.echo(f"           export FINSENT_KAFKA_BOOTSTRAP={broker.bootstrap}")
            if create_topics:
                topics = _all_topics(settings)
                ensure_topics(
                    broker.bootstrap, topics, settings.topic_partitions,
                    settings.kafka_client_options(),
                )
                typer.echo(
                    f"topics     {', '.join(topics)} ({settings.topic_partitions} partitions)"
                )
            typer.echo("Ctrl-C stops the broker (its records are lost: it keeps them in memory).")
            while not stop.wait(0.5):
                if not broker.running:
                    raise BrokerError(f"the broker on {broker.bootstrap} exited unexpectedly")
        finally:
            broker.stop()
    typer.echo("broker stopped")


def _port_of(bootstrap: str) -> int:
    first = bootstrap.split(",")[0].strip()
    _, _, port = first.rpartition(":")
    return int(port) if port.isdigit() else 9092


def topics_create(
    bootstrap: Bootstrap = None,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="Partitions (FINSENT_TOPIC_PARTITIONS).")
    ] = None,
) -> None:
    """Create the news, comments and dead-letter topics (existing ones are kept)."""
    from ingest.topics import ensure_topics

    _quiet_kafka()
    settings = _settings(kafka_bootstrap=bootstrap, topic_partitions=partitions)
    topics = _all_topics(settings)
    created = ensure_topics(
        settings.kafka_bootstrap, topics, settings.topic_partitions,
        settings.kafka_client_options(),
    )
    for name in topics:
        state = "created" if name in created else "exists"
        typer.echo(f"{name}: {state}")


# -- producers ----------------------------------------------------------------------------


def replay(
    path: Annotated[Path, typer.Argument(help="File to replay (a folder for stockemotions).")],
    format: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl|csv|stocknet|stockemotions (default: from the file name)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Send at most this many.")] = None,
    rate: Annotated[float | None, typer.Option(help="Messages per second (default: max).")] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            help="Replay original timestamps this many times faster (e.g. 3600); rows older "
            "than one already sent go at once."
        ),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="CSV: FIELD=COLUMN, repeatable (e.g. --map text=body)."),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="CSV: source of every row (default: the file name).")
    ] = None,
    kind: Annotated[str, typer.Option(help="CSV: news|comment for every row.")] = "news",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    bootstrap: Bootstrap = None,
) -> None:
    """Replay a file onto the news/comments topics (malformed rows too, to be dead-lettered)."""
    from ingest import replay as rp

    _quiet_kafka()
    fmt = format or _guess_format(path)
    mapping = rp.parse_mapping(map_ or [])
    settings = _settings(kafka_bootstrap=bootstrap)
    # Open the source before connecting: a bad path or mapping fails fast, without Kafka.
    probe = rp.open_source(path, fmt, mapping=mapping, source=source, kind=kind)
    next(probe, None)
    probe.close()
    rp.Pacer(rate, speedup)  # checks --rate/--speedup
    publisher = _publisher(settings)
    try:
        with _stop_on_signals() as stop:
            stats = rp.replay(
                path, fmt, publisher, _kind_topics(settings),
                limit=limit, rate=rate, speedup=speedup, progress=progress,
                mapping=mapping, source=source, kind=kind,
                max_bytes=settings.max_message_bytes, stop=stop,
            )
    finally:
        publisher.close()
    where = ", ".join(f"{n} to {t}" for t, n in sorted(stats.by_topic.items()))
    note = f"; {stats.malformed} malformed, sent for dead-lettering" if stats.malformed else ""
    typer.echo(f"replayed {stats.sent} messages ({where or 'none'}){note}")
    if stats.stopped:
        typer.echo("stopped early by a signal")


def _guess_format(path: Path) -> str:
    from ingest.exceptions import ReplayError

    name = path.name.lower()
    if path.is_dir() or "stockemo" in name:
        return "stockemotions"
    if "stocknet" in name:
        return "stocknet"
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                        (".csv", "csv"), (".tsv", "csv")):
        if name.removesuffix(".gz").endswith(suffix):
            return fmt
    raise ReplayError(
        f"cannot tell the format of {path}; pass --format jsonl|csv|stocknet|stockemotions"
    )


def simulate(
    rate: Annotated[float, typer.Option(help="Messages per second.")] = 5.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    count: Annotated[int | None, typer.Option(min=0, help="Stop after this many messages.")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same stream.")] = 0,
    regime_ticker: Annotated[
        str | None, typer.Option(help="Always shift this ticker (default: take turns).")
    ] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Publish a live demo stream of headlines and comments with sentiment regime shifts."""
    from ingest.exceptions import IngestError
    from ingest.simulate import generate_messages
    from ingest.simulate import simulate as run_simulation

    _quiet_kafka()
    if rate <= 0:
        raise IngestError(f"--rate must be positive (got {rate:g})")
    if duration is not None and duration <= 0:
        raise IngestError(f"--duration must be positive (got {duration:g})")
    next(generate_messages(count=1, regime_ticker=regime_ticker), None)  # checks the ticker
    settings = _settings(kafka_bootstrap=bootstrap)
    publisher = _publisher(settings)
    typer.echo(
        f"simulating {rate:g} msg/s to {settings.topic_news}, {settings.topic_comments} "
        f"(seed {seed}); Ctrl-C stops"
    )
    try:
        with _stop_on_signals() as stop:
            sent = run_simulation(
                publisher, _kind_topics(settings), rate=rate, duration_s=duration,
                count=count, seed=seed, regime_ticker=regime_ticker, stop=stop,
            )
    finally:
        publisher.close()
    typer.echo(f"simulated {sent} messages")


def feed(
    urls: Annotated[list[str], typer.Argument(help="RSS/Atom feed URLs.")],
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 300.0,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per feed download.")] = 10.0,
    seen_file: Annotated[
        Path | None,
        typer.Option(help="Seen-entry file (default: ~/.cache/finsent/feed-seen.json)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Poll RSS/Atom feeds and publish new entries to the news topic."""
    from ingest.exceptions import IngestError
    from ingest.feed import FeedPoller, SeenStore, check_url

    _quiet_kafka()
    if interval <= 0 or timeout <= 0:
        raise IngestError("--interval and --timeout must be positive")
    for url in urls:
        check_url(url)
    settings = _settings(kafka_bootstrap=bootstrap)
    seen = SeenStore(seen_file or _default_seen_file())
    publisher = _publisher(settings)
    try:
        poller = FeedPoller(urls, publisher, settings.topic_news, seen, timeout_s=timeout)
        every = "once" if once else f"every {interval:g}s; Ctrl-C stops"
        typer.echo(f"polling {len(urls)} feed(s) to {settings.topic_news}, {every}")
        with _stop_on_signals() as stop:
            published = poller.run(interval_s=interval, stop=stop, max_polls=1 if once else None)
    finally:
        publisher.close()
    typer.echo(f"published {published} new entries")


def _default_seen_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "finsent" / "feed-seen.json"
