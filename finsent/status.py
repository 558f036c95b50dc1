"""`finsent status`: what an operator asks first — is it keeping up, is anything failing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from finsent.config import Settings


def _store_status(settings: Settings) -> dict[str, Any]:
    from storage.db import make_engine
    from storage.models import Alert, DeadLetter, Document, Score, utcnow

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            since = utcnow() - timedelta(minutes=5)
            last_dead = conn.execute(
                select(DeadLetter.reason, DeadLetter.received_at)
                .order_by(DeadLetter.id.desc())
                .limit(1)
            ).first()
            recent = conn.execute(
                select(func.count()).select_from(Score).where(Score.scored_at >= since)
            ).scalar_one()
            return {
                "documents": conn.execute(select(func.count()).select_from(Document)).scalar_one(),
                "scores": conn.execute(select(func.count()).select_from(Score)).scalar_one(),
                "dead_letters": conn.execute(
                    select(func.count()).select_from(DeadLetter)
                ).scalar_one(),
                "scored_per_s_5min": round(recent / 300.0, 2),
                "open_alerts": conn.execute(
                    select(func.count()).select_from(Alert).where(Alert.status == "open")
                ).scalar_one(),
                "last_dead_letter": (
                    {"reason": last_dead.reason, "at": last_dead.received_at} if last_dead else None
                ),
            }
    finally:
        engine.dispose()


def group_lag(settings: Settings, timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
    """Committed offsets of the group against each partition's high watermark.

    The high watermark comes from a fetch (``highwater()``) rather than a "latest" offset
    lookup, which some Kafka-compatible brokers answer wrongly.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    opts = settings.kafka_client_options()
    admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **opts)
    try:
        committed = admin.list_group_offsets({settings.consumer_group: None}).get(
            settings.consumer_group, {}
        )
    finally:
        admin.close()
    consumer = KafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **opts
    )
    try:
        parts = [
            TopicPartition(t, p)
            for t in settings.topics
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        consumer.assign(parts)
        for tp in parts:
            meta = committed.get(tp)
            consumer.seek(tp, meta.offset if meta is not None and meta.offset >= 0 else 0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
            if all(consumer.highwater(tp) is not None for tp in parts):
                break
        lag: dict[tuple[str, int], int] = {}
        for tp in parts:
            high = consumer.highwater(tp)
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - done)
        return lag
    finally:
        consumer.close()


def _kafka_status(settings: Settings) -> dict[str, Any]:
    lag = group_lag(settings)
    return {
        "lag": {f"{t}[{p}]": n for (t, p), n in sorted(lag.items())},
        "total_lag": sum(lag.values()),
    }


def collect_status(settings: Settings) -> dict[str, Any]:
    """Each half reports its own failure, so a down broker still shows the store's figures."""
    report: dict[str, Any] = {"database_url": settings.database_url}
    try:
        report["store"] = _store_status(settings)
    except Exception as e:
        report["store"] = {"error": f"{type(e).__name__}: {e}"}
    try:
        report["kafka"] = _kafka_status(settings)
    except Exception as e:
        report["kafka"] = {"error": f"{type(e).__name__}: {e}"}
    return report


def render_status(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="finsent status", show_header=True)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for section in ("store", "kafka"):
        part = report.get(section, {})
        for key, value in part.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            table.add_row(f"{section}.{key}", str(value))
    console.print(table)
