"""`finsent worker`, `finsent up` and `finsent status`: running and watching the pipeline."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from finsent.config import load_settings

log = logging.getLogger("finsent")


def register(app: typer.Typer) -> None:
    """Adds the pipeline commands to the finsent app."""
    app.command("worker")(worker)
    app.command("up")(up)
    app.command("status")(status)


def worker(
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka bootstrap (FINSENT_KAFKA_BOOTSTRAP).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Store URL (FINSENT_DATABASE_URL).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder (FINSENT_MODEL).")] = None,
    backend: Annotated[str | None, typer.Option(help="auto|onnx-int8|onnx|torch.")] = None,
    device: Annotated[str | None, typer.Option(help="auto|cpu|cuda (FINSENT_DEVICE).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics here (0 = off).")
    ] = None,
    alerts: Annotated[
        bool, typer.Option("--alerts/--no-alerts", help="Evaluate alert rules after batches.")
    ] = True,
) -> None:
    """Consume, score and store records as one member of the consumer group."""
    from finsent.runtime import run_worker

    settings = load_settings(
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        model=model,
        backend=backend,
        device=device,
        metrics_port=metrics_port,
    )
    run_worker(settings, alerts=alerts)


def up(
    port: Annotated[int, typer.Option(help="Broker port; 0 = a free one.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes in the group.")] = 1,
    rate: Annotated[float, typer.Option(help="Demo stream messages per second (0 = none).")] = 20.0,
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard")] = True,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Store URL (FINSENT_DATABASE_URL).")
    ] = None,
) -> None:
    """The whole stack on embedded defaults: broker, topics, workers, dashboard, demo stream."""
    from finsent.stack import run_stack

    settings = load_settings(database_url=database_url)
    run_stack(settings, port=port, workers=workers, rate=rate, dashboard=dashboard)


def status(
    bootstrap: Annotated[str | None, typer.Option("--bootstrap")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object instead of text.")
    ] = False,
) -> None:
    """Lag per partition, throughput, dead letters, alerts and last error, for humans."""
    from finsent.status import collect_status, render_status

    settings = load_settings(kafka_bootstrap=bootstrap, database_url=database_url)
    report = collect_status(settings)
    if as_json:
        print(json.dumps(report, default=str))
    else:
        render_status(report)
