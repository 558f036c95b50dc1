"""Topic creation, idempotent: run at every start-up (``finsent up``, ``topics create``).

An existing topic is fine whatever its partition count (it is logged when it has fewer than
asked: scale-out is bounded by partitions, and Kafka never shrinks them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from ingest.exceptions import TopicError

log = logging.getLogger(__name__)


def client_config(bootstrap: str, client_options: Mapping[str, object] | None) -> dict[str, object]:
    """Security options from settings, with ``bootstrap`` as the servers (it wins)."""
    config = dict(client_options or {})
    config["bootstrap_servers"] = [s.strip() for s in bootstrap.split(",") if s.strip()]
    return config


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int,
    client_options: Mapping[str, object] | None = None,
    timeout_s: float = 30,
    replication_factor: int = 1,
) -> list[str]:
    """Creates the missing ``topics``; returns the names it created.

    Retries connection errors for ``timeout_s`` because a broker that is still starting refuses
    connections for a moment.
    """
    if partitions < 1:
        raise TopicError(f"partitions must be at least 1 (got {partitions})")
    wanted = list(dict.fromkeys(topics))
    try:
        for attempt in Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential(multiplier=0.1, max=2),
            retry=retry_if_exception(_retriable),
            reraise=False,
        ):
            with attempt:
                config = client_config(bootstrap, client_options)
                # Each attempt gives up quickly; the loop above owns the overall deadline.
                config.setdefault("bootstrap_timeout_ms", int(min(timeout_s, 5) * 1000))
                return _create_missing(config, wanted, partitions, replication_factor)
    except RetryError as e:
        cause = e.last_attempt.exception()
        raise TopicError(
            f"cannot create topics {', '.join(wanted)} on {bootstrap} within {timeout_s:g}s: "
            f"{cause}"
        ) from cause
    except KafkaError as e:
        raise TopicError(f"cannot create topics {', '.join(wanted)} on {bootstrap}: {e}") from e
    raise AssertionError("unreachable")  # pragma: no cover


def _retriable(e: BaseException) -> bool:
    """Connection trouble and retriable broker errors; not bad names or authorization."""
    return isinstance(e, KafkaConnectionError) or (
        isinstance(e, KafkaError) and bool(getattr(e, "retriable", False))
    )


def _create_missing(
    config: dict[str, object], topics: list[str], partitions: int, replication_factor: int
) -> list[str]:
    admin = KafkaAdminClient(**config)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, replication_factor)])
                created.append(name)
                log.info("created topic %s (%d partitions)", name, partitions)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
        _warn_small(admin, [t for t in topics if t in existing], partitions)
        return created
    finally:
        admin.close()


def _warn_small(admin: KafkaAdminClient, names: list[str], partitions: int) -> None:
    if not names:
        return
    try:
        described = admin.describe_topics(names)
    except KafkaError:
        return
    for topic in described:
        count = len(topic.get("partitions") or [])
        if 0 < count < partitions:
            log.warning(
                "topic %s has %d partitions (< %d): at most %d workers share its load",
                topic.get("name"), count, partitions, count,
            )
