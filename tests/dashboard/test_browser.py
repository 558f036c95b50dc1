"""The dashboard served by `streamlit run` on loopback and rendered by headless Debian chromium:
every page's key content must appear in the rendered DOM (Streamlit renders client-side, so
an HTTP 200 alone proves nothing); a screenshot of each page is kept in the test's tmp dir."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from dashboard.launch import streamlit_command

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RENDERED_PNG_BYTES = 20_000  # a rendered page is 70-140 KB; the loading skeleton about 8 KB
# (url path, page title, other content that only renders once the page's queries ran)
PAGES = [
    ("", "Market sentiment", ["Market index", "Top movers", "TSLA"]),
    ("ticker", "Ticker drill-down", ["Latest documents", "Last close", "TSLA"]),
    ("live", "Live feed", ["Newest score written", "Negative in view"]),
    ("alerts", "Open alerts", ["ticker-sentiment-drop", "Acknowledge", "Evidence"]),
    ("rules", "Alert rules", ["market-sentiment-drop", "Create rule"]),
    ("sql", "SQL console", ["documents (table)", "Run"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        message = "Debian chromium is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def served(seeded: tuple[str, Engine], tmp_path: Path) -> Iterator[str]:
    """The dashboard on a free loopback port, pointed at the seeded store."""
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        streamlit_command(port), env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_chromium(chromium: str, url: str, profile: Path, *extra: str) -> str:
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--virtual-time-budget=30000", "--window-size=1400,1000", *extra, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return proc.stdout


def visible_text(dom: str) -> str:
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def rendered(chromium: str, url: str, tmp_path: Path, name: str, needles: list[str]) -> str:
    """The page's text once every needle rendered; a few tries, since the app's first run
    in a fresh server (imports, caches) can outlast one virtual-time budget."""
    text = ""
    for attempt in range(4):
        dom = run_chromium(chromium, url, tmp_path / f"profile-{name}-{attempt}", "--dump-dom")
        text = visible_text(dom)
        if all(n in text for n in needles):
            break
    return text


def screenshot(chromium: str, url: str, shot: Path, tmp_path: Path) -> Path:
    """A screenshot of the rendered page. Virtual time does not wait for the websocket, so
    on a busy machine a capture can show Streamlit's loading skeleton (a few KB of PNG):
    take it again then."""
    for attempt in range(4):
        run_chromium(chromium, url, tmp_path / f"profile-{shot.stem}-shot-{attempt}",
                     f"--screenshot={shot}")
        if shot.exists() and shot.stat().st_size > RENDERED_PNG_BYTES:
            break
    assert shot.exists(), f"chromium wrote no screenshot of {url}"
    return shot


def test_every_page_renders_in_chromium(
    chromium: str, served: str, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for path, title, content in PAGES:
        name = path or "market"
        url = f"{served}/{path}"
        needles = [title, *content]
        text = rendered(chromium, url, tmp_path, name, needles)
        missing = [n for n in needles if n not in text]
        assert not missing, f"{url}: {missing} not rendered; text: {text[:600]}"
        assert "Traceback" not in text, f"{url} shows an exception"
        shot = screenshot(chromium, url, shots / f"{name}.png", tmp_path)
        assert shot.stat().st_size > RENDERED_PNG_BYTES, f"{url} still a skeleton: {shot}"
