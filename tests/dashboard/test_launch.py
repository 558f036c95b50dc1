"""`finsent dashboard` serves the app on loopback with the store passed through the env."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy.engine import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_finsent_dashboard_serves_on_loopback(
    empty_store: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _ = empty_store
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FINSENT_DATABASE_URL"}
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "finsent.cli", "dashboard", "--port", str(port),
         "--database-url", url],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        health = b""
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline and health != b"ok":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    health = r.read().strip()
            except OSError:
                time.sleep(0.3)
        assert health == b"ok", (tmp_path / "dashboard.log").read_text()
        # bound to loopback only: the port is not open on another local address
        with socket.socket() as s:
            s.settimeout(2)
            other = socket.gethostbyname(socket.gethostname())
            if not other.startswith("127."):
                assert s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0
    assert f"dashboard on http://127.0.0.1:{port}" in (tmp_path / "dashboard.log").read_text()
    # SIGTERM to `finsent dashboard` stopped streamlit too: nothing listens any more
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
