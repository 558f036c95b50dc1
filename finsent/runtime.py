"""Starting a worker process: logging, metrics endpoint, alert hook, signal handling."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from finsent.config import Settings

log = logging.getLogger("finsent.worker")


def make_alert_hook(settings: Settings):  # type: ignore[no-untyped-def]
    """Evaluates the rules after committed batches; the webhook posts from its own thread."""
    from alerts.engine import evaluate_rules
    from alerts.webhook import WebhookNotifier

    notifier = WebhookNotifier(settings.webhook_url) if settings.webhook_url else None

    def hook(engine):  # type: ignore[no-untyped-def]
        return evaluate_rules(engine, notifier=notifier)

    return hook


def run_worker(settings: Settings, *, alerts: bool = True) -> None:
    """Runs one worker until SIGTERM/SIGINT; the batch in hand is committed before exit."""
    from finsent.worker import Worker

    logging.getLogger().setLevel(settings.log_level.upper())
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", settings.metrics_port)
    worker = Worker(settings, alert_hook=make_alert_hook(settings) if alerts else None)
    if alerts:
        from alerts.defaults import install_default_rules

        # a production deployment without `finsent up` still gets the shipped rules
        install_default_rules(worker.engine)
    worker.install_signal_handlers()
    log.info(
        "worker: group %s, topics %s, model %s, store %s",
        settings.consumer_group,
        ",".join(settings.topics),
        worker.backend.model_version,
        settings.database_url,
    )
    worker.run()
    log.info("worker stopped after %d batches", worker.batches)
