"""The embedded broker: starts, answers Kafka, stops; clear errors for the ways it cannot."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, free_port, port_in_use, probe_metadata
from ingest.exceptions import BrokerError, IngestError


def test_start_answers_kafka_and_stop_frees_the_port() -> None:
    with EmbeddedBroker() as broker:
        assert broker.running
        host, port = broker.bootstrap.split(":")
        assert host == "127.0.0.1"
        probe_metadata(host, int(port))  # raises unless a Kafka broker answers
        assert port_in_use(host, int(port))
    assert not broker.running
    with pytest.raises(OSError):
        probe_metadata(host, int(port), timeout=0.5)
    broker.stop()  # a second stop is harmless


def test_restart_on_the_same_port() -> None:
    port = free_port()
    with EmbeddedBroker(port=port) as first:
        probe_metadata("127.0.0.1", port)
    assert not first.running
    with EmbeddedBroker(port=port) as second:
        probe_metadata("127.0.0.1", port)
        assert second.bootstrap == f"127.0.0.1:{port}"


def test_taken_port_is_refused_before_launch() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use"):
            broker.start()
        assert broker.pid is None


def test_port_taken_by_another_broker(tansu: EmbeddedBroker) -> None:
    with pytest.raises(IngestError, match="already in use"):
        EmbeddedBroker(port=tansu.port).start()
    assert tansu.running


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerError, match="Tansu broker binary not found"):
        EmbeddedBroker().start()


def test_early_exit_zero_is_detected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tansu exits 0 when its port is taken after our check (a race): that is a failure."""
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'Address in use' >&2\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(BrokerError, match=r"exited with code 0 .*Address in use"):
        EmbeddedBroker().start(timeout=10)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert not port_in_use("127.0.0.1", port)
