"""Starting a worker process: logging, metrics endpoint, alert hook, signal handling."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from sqlalchemy.engine import Engine

from finsent.config import Settings
from finsent.worker import AlertHook

if TYPE_CHECKING:
    from alerts.webhook import WebhookNotifier

log = logging.getLogger("finsent.worker")


def make_alert_hook(settings: Settings, engine: Engine) -> tuple[AlertHook, WebhookNotifier | None]:
    """Evaluates the rules after committed batches; the webhook posts from its own thread
    and marks each alert notified once its POST succeeded."""
    from alerts.engine import evaluate_rules
    from alerts.webhook import WebhookNotifier
    from storage import queries

    notifier = (
        WebhookNotifier(
            settings.webhook_url,
            on_delivered=lambda ev: queries.mark_notified(engine, ev.alert_id),
        )
        if settings.webhook_url
        else None
    )

    def hook(eng: Engine) -> object:
        return evaluate_rules(eng, notifier=notifier)

    return hook, notifier


def run_worker(settings: Settings, *, alerts: bool = True) -> None:
    """Runs one worker until SIGTERM/SIGINT; the batch in hand is committed before exit."""
    from finsent.worker import Worker

    logging.getLogger().setLevel(settings.log_level.upper())
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", settings.metrics_port)
    worker = Worker(settings)
    notifier = None
    if alerts:
        from alerts.defaults import install_default_rules

        # a production deployment without `finsent up` still gets the shipped rules
        install_default_rules(worker.engine)
        worker.alert_hook, notifier = make_alert_hook(settings, worker.engine)
    worker.install_signal_handlers()
    log.info(
        "worker: group %s, topics %s, model %s, store %s",
        settings.consumer_group,
        ",".join(settings.topics),
        worker.backend.model_version,
        settings.database_url,
    )
    try:
        worker.run()
    finally:
        if notifier is not None:
            notifier.close()  # flushes queued webhook posts, bounded by its retries
    log.info("worker stopped after %d batches", worker.batches)
