"""Webhook delivery against a real local HTTP server: success, 500 then success, refusal,
unreachable, and a full queue; ``notify`` never waits for the network."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts.events import AlertEvent
from alerts.exceptions import AlertsError
from alerts.webhook import WebhookNotifier


def event(alert_id: int = 1) -> AlertEvent:
    at = datetime(2015, 6, 1, 15, 0)
    return AlertEvent(
        event="opened",
        alert_id=alert_id,
        rule_id=7,
        rule_name="ticker-sentiment-drop",
        rule_kind="mean_below",
        scope="ticker",
        ticker="AAPL",
        value=-0.45,
        threshold=-0.3,
        at=at,
        opened_at=at,
        evidence=[3, 1, 2],
    )


class Receiver:
    """An HTTP endpoint answering a scripted list of status codes (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict] = []
        self.hits = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.hits += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(statuses: list[int] | None = None) -> Receiver:
        r = Receiver(statuses or [])
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_success_posts_the_event_as_json(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver = receiver_factory()
    delivered: list[int] = []
    hook = WebhookNotifier(receiver.url, on_delivered=lambda e: delivered.append(e.alert_id))
    hook.notify([event(1)])
    assert hook.wait_idle(10)
    hook.close()
    assert hook.delivered == 1 and hook.failed == 0
    [body] = receiver.bodies
    assert body["event"] == "opened" and body["ticker"] == "AAPL"
    assert body["rule_name"] == "ticker-sentiment-drop"
    assert body["opened_at"] == "2015-06-01T15:00:00Z"
    assert body["evidence"] == [3, 1, 2]
    assert delivered == [1]


def test_server_error_is_retried_until_success(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver = receiver_factory([500, 503])
    hook = WebhookNotifier(receiver.url, backoff_s=0.01, attempts=4)
    hook.notify([event(1)])
    assert hook.wait_idle(10)
    assert receiver.hits == 3
    assert hook.delivered == 1 and hook.failed == 0
    assert len(receiver.bodies) == 1


def test_retries_are_bounded(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver = receiver_factory([500] * 10)
    hook = WebhookNotifier(receiver.url, backoff_s=0.01, attempts=3)
    hook.notify([event(1), event(2)])
    assert hook.wait_idle(10)
    assert receiver.hits == 6
    assert hook.failed == 2 and hook.delivered == 0


def test_client_error_is_not_retried(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    receiver = receiver_factory([400])
    hook = WebhookNotifier(receiver.url, backoff_s=0.01, attempts=5)
    hook.notify([event(1), event(2)])
    assert hook.wait_idle(10)
    assert receiver.hits == 2  # the refused one once, then the next event
    assert hook.failed == 1 and hook.delivered == 1


def test_unreachable_webhook_never_blocks_notify() -> None:
    hook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", backoff_s=0.01, attempts=3)
    calls_done = threading.Event()

    def caller() -> None:
        hook.notify([event(i) for i in range(5)])
        calls_done.set()

    threading.Thread(target=caller, daemon=True).start()
    # notify only enqueues; it is back long before 5 events x 3 attempts could be posted
    assert calls_done.wait(5)
    assert hook.wait_idle(30)
    assert hook.failed == 5 and hook.delivered == 0


def test_full_queue_drops_instead_of_blocking(receiver_factory) -> None:  # type: ignore[no-untyped-def]
    gate = threading.Event()
    receiver = receiver_factory()
    hook = WebhookNotifier(receiver.url, max_queue=2, on_delivered=lambda e: gate.wait(10))
    hook.notify([event(i) for i in range(6)])  # one in flight (held by the gate), two queued
    assert hook.dropped >= 3
    gate.set()
    assert hook.wait_idle(10)
    assert hook.delivered + hook.dropped == 6


def test_bad_url_is_refused() -> None:
    with pytest.raises(AlertsError, match="http"):
        WebhookNotifier("ftp://example/hook")
