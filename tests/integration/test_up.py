"""`finsent up`: the README's main command brings the stack up and Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from finsent.config import load_settings
from tests.integration.conftest import run_cli, wait_until


def _scores(url: str) -> int:
    out = run_cli(
        load_settings(database_url=url),
        "sql",
        "select count(*) as n from scores",
        "--format",
        "json",
    )
    if out.returncode != 0:
        return -1
    return int(re.search(r"\d+", out.stdout).group())  # type: ignore[union-attr]


def _start_up(url: str, rate: int, **env: str) -> subprocess.Popen[str]:
    """`finsent up` (no dashboard) on the SQLite file ``url``, in a process group of its own
    so a test can signal the supervisor alone or the whole group."""
    return subprocess.Popen(
        [sys.executable, "-m", "finsent.cli", "up", "--no-dashboard", "--rate", str(rate)],
        env=dict(os.environ, FINSENT_DATABASE_URL=url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_up_scores_grow_and_ctrl_c_stops_everything(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'up.db'}"
    proc = _start_up(url, 30, FINSENT_SESSION_TIMEOUT_MS="3000",
                     FINSENT_HEARTBEAT_INTERVAL_MS="500")
    try:
        wait_until(lambda: _scores(url) > 0, 180, "the first scores")
        first = _scores(url)
        wait_until(lambda: _scores(url) > first, 60, "scores to keep growing")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    for component in ("store", "broker", "topics", "worker-1", "demo"):
        assert re.search(rf"^{component}\s", out, re.M), f"no line for {component}:\n{out}"
    assert "all components stopped" in out, out[-3000:]
    time.sleep(0.5)
    assert proc.returncode == 0, out[-3000:]


def test_up_sigterm_to_the_supervisor_stops_its_children(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'up.db'}"
    proc = _start_up(url, 5)
    try:
        wait_until(lambda: _scores(url) > 0, 180, "the first scores")
        proc.send_signal(signal.SIGTERM)  # the supervisor alone, as systemd or docker would
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", out)]
    assert pids, out
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"child {pid} outlived its supervisor")


def test_workers_share_the_cores_unless_threads_are_set() -> None:
    from finsent.stack import worker_threads

    assert worker_threads(0, 1, 2) == 2  # one worker: every core
    assert worker_threads(0, 2, 2) == 1  # one thread per worker, not 2 x 2 on 2 cores
    assert worker_threads(0, 3, 2) == 1  # never below one
    assert worker_threads(0, 2, 16) == 8
    assert worker_threads(3, 2, 16) == 3  # FINSENT_THREADS wins
    assert worker_threads(0, 1, None) == 1  # cpu_count() unknown
