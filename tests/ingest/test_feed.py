"""RSS/Atom polling against feeds served by a local HTTP server: good, garbage, slow, missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from ingest.exceptions import FeedError
from ingest.feed import FeedPoller, SeenStore, check_url, parse_feed
from ingest.producer import Publisher, make_producer
from ingest.schema import decode


def rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><guid>{guid}</guid><link>https://news.example/{guid}</link>"
        f"<description>{desc}</description><pubDate>Mon, 06 Sep 2021 16:45:00 GMT</pubDate>"
        "</item>"
        for guid, title, desc in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Example Markets</title>'
        f"<language>en-us</language>{body}</channel></rss>"
    ).encode()


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Wire</title>
<entry><id>urn:uuid:1</id><title>Microsoft raises dividend</title>
<updated>2024-02-01T09:30:00Z</updated><summary>Board approves a 10% increase.</summary></entry>
<entry><id>urn:uuid:2</id><title></title><summary></summary></entry>
</feed>"""


class FeedServer:
    """Serves ``routes`` (path -> bytes); /slow waits until released; others are 404."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/slow":
                    server.release.wait(10)
                body = server.routes.get(self.path)
                try:
                    if body is None:
                        self.send_error(404, "Not Found")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow feed

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def test_poll_dedupes_across_polls_and_restarts_and_survives_bad_feeds(
    tansu: EmbeddedBroker, topic_names: dict[str, str], feed_server: FeedServer,
    tmp_path: Path, read_topic,
) -> None:
    feed_server.routes["/good.xml"] = rss([
        ("g1", "Apple beats estimates", "<p>Revenue <b>rose</b> 8%</p>"),
        ("g2", "Tesla cuts prices", "Margins &amp; demand in focus"),
    ])
    feed_server.routes["/garbage"] = b"<html><body>Service temporarily unavailable</body></html>"
    feed_server.routes["/binary"] = bytes(range(256)) * 4
    feed_server.routes["/slow"] = rss([("s1", "never seen", "too slow")])
    urls = [feed_server.url(p) for p in ("/good.xml", "/garbage", "/slow", "/missing", "/binary")]
    seen_path = tmp_path / "state" / "seen.json"
    topic = topic_names["news"]

    with Publisher(make_producer(tansu.bootstrap)) as pub:
        poller = FeedPoller(urls, pub, topic, SeenStore(seen_path), timeout_s=0.5)
        first = {r.url.rsplit("/", 1)[1]: r for r in poller.poll_once()}
        assert (first["good.xml"].entries, first["good.xml"].new) == (2, 2)
        assert first["good.xml"].error is None
        assert "not an RSS/Atom feed" in (first["garbage"].error or "")
        assert "not an RSS/Atom feed" in (first["binary"].error or "")
        assert "timed out" in (first["slow"].error or "")
        assert "HTTP 404" in (first["missing"].error or "")

        feed_server.routes["/good.xml"] = rss([
            ("g3", "Nvidia unveils new chip", "Shares rise"),
            ("g1", "Apple beats estimates", "<p>Revenue <b>rose</b> 8%</p>"),
            ("g2", "Tesla cuts prices", "Margins &amp; demand in focus"),
        ])
        second = poller.poll_once()
        assert [r.new for r in second if r.url.endswith("good.xml")] == [1]

        restarted = FeedPoller(urls[:1], pub, topic, SeenStore(seen_path), timeout_s=0.5)
        assert restarted.poll_once()[0].new == 0

    records = read_topic(topic, 3)
    messages = {decode(r.value, max_bytes=100_000).id: decode(r.value, max_bytes=100_000)
                for r in records}
    assert len(records) == 3 and set(messages) == {"g1", "g2", "g3"}
    g1 = messages["g1"]
    assert (g1.kind, g1.source, g1.title, g1.text) == (
        "news", "127.0.0.1", "Apple beats estimates", "Revenue rose 8%")
    assert messages["g2"].text == "Margins & demand in focus"
    assert g1.published_at == datetime(2021, 9, 6, 16, 45, tzinfo=UTC)
    assert (g1.url, g1.lang) == ("https://news.example/g1", "en-us")


def test_run_polls_on_an_interval_until_max_polls(
    tansu: EmbeddedBroker, topic_names: dict[str, str], feed_server: FeedServer
) -> None:
    feed_server.routes["/a.xml"] = rss([("a1", "One", "first")])
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        poller = FeedPoller([feed_server.url("/a.xml")], pub, topic_names["news"], SeenStore())
        assert poller.run(interval_s=0.01, max_polls=3) == 1


def test_parse_atom_skips_empty_entries() -> None:
    messages = parse_feed(ATOM, "https://wire.example/atom")
    assert len(messages) == 1
    m = messages[0]
    assert (m.id, m.source, m.title) == ("urn:uuid:1", "wire.example", "Microsoft raises dividend")
    assert m.text == "Board approves a 10% increase."
    assert m.published_at == datetime(2024, 2, 1, 9, 30, tzinfo=UTC)


def test_not_a_feed_url() -> None:
    for bad in ("ftp://x/feed", "example.com/rss", "http://"):
        with pytest.raises(FeedError, match="not a feed URL"):
            check_url(bad)
    assert check_url("https://example.com/rss") == "https://example.com/rss"


def test_seen_store_is_bounded_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "seen.json"
    store = SeenStore(path, max_items=3)
    store.add(["a", "b", "c", "d"])
    store.save()
    again = SeenStore(path, max_items=3)
    assert "a" not in again and all(k in again for k in "bcd")
    path.write_text("{not json")
    assert len(SeenStore(path)) == 0
