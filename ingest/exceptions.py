"""The ingest room's errors: one root, ``IngestError``, so the CLI can turn any of them into one
line on stderr and exit code 2. Library errors (kafka-python, OS, pydantic) are wrapped ``from e``
so the cause stays in the traceback for developers.
"""

from __future__ import annotations


class IngestError(Exception):
    """An ingest problem a user can fix or must know about: a bad record, file, port or broker."""


class InvalidRecord(IngestError):
    """A Kafka record that cannot become a ``Message``; ``reason`` goes to the dead-letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BrokerError(IngestError):
    """The embedded broker cannot start: binary missing, port taken, early exit, no answer."""


class TopicError(IngestError):
    """Topics could not be created or checked on the brokers."""


class PublishError(IngestError):
    """Records could not be delivered to Kafka, even after reconnecting."""


class ConsumeError(IngestError):
    """Polling Kafka failed in a way the consumer cannot recover from by itself."""


class CommitFailed(IngestError):
    """Offsets were not committed (rebalance, lost group membership, broker gone)."""


class ReplayError(IngestError):
    """A replay source is unusable: missing file, unknown format, bad column mapping."""


class FeedError(IngestError):
    """One feed could not be fetched or parsed; the feed loop logs it and carries on."""
