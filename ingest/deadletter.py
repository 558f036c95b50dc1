"""Dead-letter: a record the worker cannot use goes to its own topic, byte for byte, with why.

The value is the original bytes unchanged, so the record can be inspected, fixed and replayed;
where it came from and why it was refused travel in headers, which every Kafka tool shows.
"""

from __future__ import annotations

from ingest.consumer import RawRecord
from ingest.producer import Publisher

REASON_HEADER = "finsent-reason"
TOPIC_HEADER = "finsent-source-topic"
PARTITION_HEADER = "finsent-source-partition"
OFFSET_HEADER = "finsent-source-offset"
_MAX_REASON_BYTES = 4096


class DeadLetterPublisher:
    """Publishes refused records to ``topic`` through ``publisher``.

    Delivery is asynchronous like any publish: the worker calls ``flush()`` (here or on the
    publisher) before committing the offsets of a batch that had dead letters.
    """

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic

    def publish(self, record: RawRecord, reason: str) -> None:
        """Same key as the source record, so its partition order is kept per key."""
        headers = [
            (REASON_HEADER, reason.encode("utf-8", "replace")[:_MAX_REASON_BYTES]),
            (TOPIC_HEADER, record.topic.encode("utf-8")),
            (PARTITION_HEADER, str(record.partition).encode("ascii")),
            (OFFSET_HEADER, str(record.offset).encode("ascii")),
        ]
        value = record.value if record.value is not None else b""
        self.publisher.publish_raw(self.topic, value, record.key, headers)

    def flush(self) -> None:
        self.publisher.flush()
