"""RSS/Atom news feeds onto ``finsent.news``: poll, dedupe by entry id, publish the new ones.

One bad feed never stops the others: a timeout, an HTTP error or a page that is not a feed is
logged and the loop carries on. Entries are marked seen only after Kafka acknowledged them,
so a Kafka outage delays entries instead of losing them. The seen-set lives in a small JSON
file (bounded, oldest forgotten first) so a restart does not republish a whole feed; a
republished entry would anyway merge in the store under the same ``(source, id)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import feedparser
from pydantic import ValidationError

from ingest.exceptions import FeedError, IngestError
from ingest.producer import Publisher
from ingest.schema import Message

log = logging.getLogger(__name__)

USER_AGENT = "finsent-feed/0.1 (+https://github.com/finsent)"
DEFAULT_MAX_FEED_BYTES = 10 * 1024 * 1024
_SCHEMES = ("http", "https", "file")


# -- fetching and parsing -----------------------------------------------------------------


def check_url(url: str) -> str:
    """Refuses what cannot be a feed address before the loop starts (CLI: exit 2)."""
    parsed = urlparse(url)
    if parsed.scheme not in _SCHEMES or not (parsed.netloc or parsed.scheme == "file"):
        raise FeedError(f"not a feed URL: {url!r} (expected http://, https:// or file://)")
    return url


def fetch(
    url: str,
    *,
    timeout_s: float = 10.0,
    max_bytes: int = DEFAULT_MAX_FEED_BYTES,
    etag: str | None = None,
    modified: str | None = None,
) -> tuple[bytes | None, dict[str, str]]:
    """(body, validators) or (None, validators) when the server says 304 Not Modified.

    ``timeout_s`` bounds the whole download, not only each socket read, so a server that
    trickles bytes cannot hold the loop.
    """
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
    }
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"{url}: feed larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FeedError(f"{url}: download took longer than {timeout_s:g}s")
                chunks.append(chunk)
            validators = {
                k: v for k in ("ETag", "Last-Modified") if (v := response.headers.get(k))
            }
            return b"".join(chunks), validators
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return None, {}
        raise FeedError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise FeedError(f"{url}: {e.reason}") from e
    except TimeoutError as e:
        raise FeedError(f"{url}: timed out after {timeout_s:g}s") from e
    except OSError as e:
        raise FeedError(f"{url}: {e}") from e


def parse_feed(data: bytes, url: str) -> list[Message]:
    """Entries of an RSS/Atom document as news messages; ``FeedError`` if it is not a feed."""
    parsed = feedparser.parse(data)
    if not parsed.get("version"):
        why = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise FeedError(f"{url}: not an RSS/Atom feed ({why})")
    feed = parsed.get("feed", {})
    source = (urlparse(url).hostname or _plain(feed.get("title")) or "feed")[:64]
    lang = (feed.get("language") or "")[:16] or None
    messages = []
    for entry in parsed.get("entries", []):
        msg = _entry_message(entry, source, lang)
        if msg is not None:
            messages.append(msg)
    return messages


def _entry_message(entry: Any, source: str, lang: str | None) -> Message | None:
    title = _plain(entry.get("title"))
    contents = entry.get("content") or []
    body = _plain(entry.get("summary")) or (_plain(contents[0].get("value")) if contents else "")
    text = body or title
    if not text:
        log.info("%s: entry without title or text skipped", source)
        return None
    entry_id = entry.get("id") or entry.get("link") or _digest(f"{title}|{entry.get('published')}")
    if len(entry_id) > 256:
        entry_id = _digest(entry_id)
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    data: dict[str, Any] = {
        "id": entry_id,
        "source": source,
        "kind": "news",
        "text": text,
        "title": title or None,
        "published_at": datetime(*when[:6], tzinfo=UTC) if when else None,
        "url": entry.get("link") or None,
        "author": (entry.get("author") or "")[:256] or None,
        "lang": lang,
    }
    try:
        return Message.model_validate(data)
    except ValidationError as e:
        log.warning("%s: entry %s skipped: %s", source, entry_id[:80], e.errors()[0]["msg"])
        return None


def _digest(s: str) -> str:
    return "sha1:" + hashlib.sha1(s.encode("utf-8"), usedforsecurity=False).hexdigest()


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain(html: str | None) -> str:
    """Feed summaries are HTML; the scorer wants words."""
    if not html:
        return ""
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split()).replace("\x00", "")


# -- the seen-set -------------------------------------------------------------------------


class SeenStore:
    """Dedupe keys of entries already published, oldest first, at most ``max_items``.

    ``path=None`` keeps it in memory only. A corrupt file is logged and replaced: the cost is
    entries published again, which the store merges.
    """

    def __init__(self, path: Path | None = None, max_items: int = 50_000) -> None:
        self.path = path
        self.max_items = max_items
        self._keys: OrderedDict[str, None] = OrderedDict()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                keys = data["seen"]
                if not isinstance(keys, list):
                    raise TypeError("'seen' is not a list")
                self._keys.update((str(k), None) for k in keys[-max_items:])
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("seen-set %s unreadable (%s); starting empty", path, e)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_items:
            self._keys.popitem(last=False)

    def save(self) -> None:
        """Atomic: a crash mid-write leaves the previous file."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": 1, "seen": list(self._keys)}), encoding="utf-8")
        os.replace(tmp, self.path)


# -- polling ------------------------------------------------------------------------------


@dataclass
class FeedResult:
    url: str
    entries: int = 0
    new: int = 0
    error: str | None = None


class FeedPoller:
    """Polls a set of feeds; remembers HTTP validators (ETag) between polls."""

    def __init__(
        self,
        urls: list[str],
        publisher: Publisher,
        topic: str,
        seen: SeenStore,
        *,
        timeout_s: float = 10.0,
        max_bytes: int = DEFAULT_MAX_FEED_BYTES,
    ) -> None:
        self.urls = [check_url(u) for u in urls]
        if not self.urls:
            raise FeedError("no feed URL given")
        self.publisher = publisher
        self.topic = topic
        self.seen = seen
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._validators: dict[str, dict[str, str]] = {}

    def poll_once(self) -> list[FeedResult]:
        return [self._poll(url) for url in self.urls]

    def _poll(self, url: str) -> FeedResult:
        result = FeedResult(url)
        try:
            v = self._validators.get(url, {})
            data, validators = fetch(
                url, timeout_s=self.timeout_s, max_bytes=self.max_bytes,
                etag=v.get("ETag"), modified=v.get("Last-Modified"),
            )
            if data is None:
                log.info("feed %s: not modified", url)
                return result
            messages = parse_feed(data, url)
            result.entries = len(messages)
            fresh = [m for m in messages if m.dedupe_key not in self.seen]
            for msg in fresh:
                self.publisher.publish(msg, self.topic)
            self.publisher.flush()  # only acknowledged entries count as seen
            self.seen.add(m.dedupe_key for m in fresh)
            self.seen.save()
            self._validators[url] = validators
            result.new = len(fresh)
            log.info("feed %s: %d entries, %d new", url, result.entries, result.new)
        except IngestError as e:
            result.error = str(e)
            log.warning("feed %s skipped this round: %s", url, e)
        except OSError as e:  # the seen-set file
            result.error = str(e)
            log.error("feed %s: cannot save the seen-set: %s", url, e)
        return result

    def run(
        self,
        *,
        interval_s: float = 300.0,
        stop: threading.Event | None = None,
        max_polls: int | None = None,
    ) -> int:
        """Polls every ``interval_s`` until ``stop`` is set or ``max_polls`` rounds; returns
        the number of entries published."""
        stop = stop or threading.Event()
        published = 0
        polls = 0
        while not stop.is_set():
            published += sum(r.new for r in self.poll_once())
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            stop.wait(interval_s)
        return published
