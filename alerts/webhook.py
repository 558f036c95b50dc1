"""JSON POST of opened/resolved alerts, from a background thread so scoring never waits.

``notify`` only puts events on a bounded queue and returns; when the queue is full (the
webhook has been down for a long while) new events are dropped and counted rather than
blocking the worker: the ``alerts`` table stays the record of truth. One thread posts each
event with bounded retries (tenacity, exponential backoff); 4xx answers other than 408/429
are the receiver refusing the payload and are not retried.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from alerts.events import AlertEvent
from alerts.exceptions import AlertsError

log = logging.getLogger("alerts.webhook")

_STOP = object()


class WebhookFailed(AlertsError):
    """One POST failed in a way worth retrying (network error, timeout, 5xx, 408, 429)."""


class WebhookRefused(AlertsError):
    """The receiver answered 4xx: the same payload will not fare better on a retry."""


class WebhookNotifier:
    """Posts each AlertEvent as JSON to ``url``; ``notify`` never blocks."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        on_delivered: Callable[[AlertEvent], None] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise AlertsError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.on_delivered = on_delivered
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="alerts-webhook", daemon=True)
        self._thread.start()

    def notify(self, events: Sequence[AlertEvent]) -> None:
        for event in events:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self.dropped += 1
                log.warning("webhook queue full: dropped %s alert %d", event.event, event.alert_id)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every queued event was delivered or given up on (for tests and exit)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Delivers what is queued (within ``timeout_s``) and stops the thread."""
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, AlertEvent)
                self._deliver(item)
            except Exception:  # the thread must outlive any one bad event
                log.exception("webhook delivery crashed")
            finally:
                self._queue.task_done()

    def _deliver(self, event: AlertEvent) -> None:
        body = json.dumps({"source": "finsent", **event.to_json()}).encode()
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception_type(WebhookFailed),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._post(body)
        except (WebhookFailed, WebhookRefused) as e:
            self.failed += 1
            log.error("webhook gave up on %s alert %d: %s", event.event, event.alert_id, e)
            return
        self.delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(event)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "finsent-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise WebhookRefused(f"HTTP {e.code} from {self.url}") from e
            raise WebhookFailed(f"HTTP {e.code} from {self.url}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            raise WebhookFailed(f"{self.url} unreachable: {e}") from e
