"""Threshold alerts over rolling windows of stored scores.

Entry point: ``alerts.engine.evaluate_rules(engine, now=None, notifier=None)``, called by the
worker after each committed batch and by ``finsent alerts``. The decision logic is pure
(``alerts.decision``); DB reads are in ``alerts.windows``; webhooks in ``alerts.webhook``.
"""
