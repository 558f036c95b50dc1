"""Replaying files onto Kafka: schema-v1 JSONL, any CSV with a column mapping, and the StockNet
and StockEmotions data sets.

Readers yield ``Message`` for good rows and the raw ``bytes`` for rows that are not valid
messages: those are sent too, so that the worker dead-letters them with a reason and nothing
in the file is silently dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from tqdm import tqdm

from ingest.exceptions import IngestError, InvalidRecord, ReplayError
from ingest.producer import Publisher
from ingest.schema import KINDS, Message, decode

log = logging.getLogger(__name__)

Item = Message | bytes
FORMATS = ("jsonl", "csv", "stocknet", "stockemotions")
DEFAULT_MAX_BYTES = 1_000_000
_TICKER_SPLIT = re.compile(r"[\s,;|]+")
_MESSAGE_FIELDS = set(Message.model_fields)

csv.field_size_limit(16 * 1024 * 1024)  # long articles; the default 128 KiB cap raises


# -- readers ------------------------------------------------------------------------------


def read_jsonl(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Item]:
    """One schema-v1 object per line; blank lines are skipped, malformed ones yielded raw."""
    with _open_binary(path) as f:
        for lineno, line in enumerate(_lines(f, path), start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                yield decode(raw, max_bytes=max_bytes)
            except InvalidRecord as e:
                log.warning("%s line %d: %s; sent as is (it will be dead-lettered)",
                            path, lineno, e.reason)
                yield raw


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["text=body", "id=uid"]`` -> ``{"text": "body", "id": "uid"}`` (field = column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise ReplayError(f"bad --map {pair!r}: expected FIELD=COLUMN, e.g. text=body")
        if name in mapping:
            raise ReplayError(f"bad --map {pair!r}: field {name!r} is mapped twice")
        mapping[name] = column
    return mapping


def read_csv(
    path: Path,
    mapping: Mapping[str, str] | None = None,
    *,
    source: str | None = None,
    kind: str = "news",
    delimiter: str = ",",
) -> Iterator[Item]:
    """Rows of any CSV; ``mapping`` names the column of each message field.

    Columns already named like a schema field need no mapping. Defaults: ``source`` = the
    file's stem, ``kind`` = news, ``id`` = ``<stem>-<row number>`` (stable across replays of
    the same file, so a second replay deduplicates). Mapped fields outside schema v1 become
    extra fields.
    """
    if kind not in KINDS:
        raise ReplayError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    stem = _stem(path)
    with _open_text(path) as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        columns = _resolve_columns(header, mapping or {}, path)
        if "id" not in columns:
            log.info("%s: no id column; ids are %s-<row number>", path, stem)
        for rowno, row in enumerate(_rows(reader, path), start=1):
            data: dict[str, Any] = {"source": source or stem, "kind": kind}
            for name, column in columns.items():
                cell = row.get(column)
                if cell is None or cell == "":
                    continue
                data[name] = _split_tickers(cell) if name == "tickers" else cell
            data.setdefault("id", f"{stem}-{rowno}")
            yield _validated(data, f"{path} row {rowno}")


def read_stocknet(path: Path) -> Iterator[Item]:
    """StockNet tweets: one message per row (a tweet filed under several tickers appears once
    per ticker; the dedupe key ``(stocknet, tweet_id)`` merges them downstream)."""
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        _require_columns(reader.fieldnames, ("created_at_utc", "tweet_id", "ticker", "text"), path)
        for rowno, row in enumerate(_rows(reader, path), start=1):
            data: dict[str, Any] = {
                "id": row.get("tweet_id"),
                "source": "stocknet",
                "kind": "comment",
                "text": row.get("text"),
                "published_at": row.get("created_at_utc") or None,
                "tickers": _split_tickers(row.get("ticker") or ""),
            }
            if row.get("lang"):
                data["lang"] = row["lang"]
            if row.get("retweet") in ("0", "1"):
                data["retweet"] = row["retweet"] == "1"
            yield _validated(data, f"{path} row {rowno}")


def read_stockemotions(path: Path) -> Iterator[Item]:
    """StockEmotions posts (StockTwits, 2020). A folder means all its CSV files, merged in date
    order so that ``--speedup`` replays a coherent timeline."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise ReplayError(f"no CSV files in {path}")
    rows: list[tuple[str, str, dict[str, str], str]] = []
    for file in files:
        with _open_text(file) as f:
            reader = csv.DictReader(f)
            _require_columns(reader.fieldnames, ("id", "date", "ticker", "original"), file)
            for rowno, row in enumerate(_rows(reader, file), start=1):
                rows.append((row.get("date") or "", row.get("id") or "", row,
                             f"{file} row {rowno}"))
    if path.is_dir():
        rows.sort(key=lambda r: (r[0], r[1]))
    for _, _, row, where in rows:
        data: dict[str, Any] = {
            "id": row.get("id"),
            "source": "stocktwits",
            "kind": "comment",
            "text": row.get("original"),
            "published_at": row.get("date") or None,
            "tickers": _split_tickers(row.get("ticker") or ""),
        }
        for label in ("senti_label", "emo_label"):
            if row.get(label):
                data[label] = row[label]
        yield _validated(data, where)


def open_source(
    path: Path,
    format: str,
    *,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    kind: str = "news",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[Item]:
    """The reader for ``format``; a missing file or unknown format is a ``ReplayError``."""
    if format not in FORMATS:
        raise ReplayError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise ReplayError(f"no such file: {path}")
    if path.is_dir() and format != "stockemotions":
        raise ReplayError(f"{path} is a folder; the {format} format reads one file")
    if mapping and format != "csv":
        raise ReplayError("--map applies to --format csv only")
    if format == "jsonl":
        return read_jsonl(path, max_bytes=max_bytes)
    if format == "csv":
        return read_csv(path, mapping, source=source, kind=kind)
    if format == "stocknet":
        return read_stocknet(path)
    return read_stockemotions(path)


# -- replay -------------------------------------------------------------------------------


@dataclass
class ReplayStats:
    sent: int = 0
    malformed: int = 0
    stopped: bool = False
    by_topic: Counter[str] = field(default_factory=Counter)


class Pacer:
    """Sleeps so that records leave at ``rate`` per second and/or at their original pace
    divided by ``speedup``; when both are set, each record waits for the later of the two.

    Timestamps that go back in time (files not sorted by time) do not wait.
    """

    def __init__(
        self,
        rate: float | None = None,
        speedup: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ReplayError(f"--rate must be positive (got {rate:g})")
        if speedup is not None and speedup <= 0:
            raise ReplayError(f"--speedup must be positive (got {speedup:g})")
        self.rate, self.speedup = rate, speedup
        self._clock, self._sleep = clock, sleep
        self._start: float | None = None
        self._count = 0
        self._t0: datetime | None = None
        self._latest: datetime | None = None

    def wait(self, published_at: datetime | None) -> float:
        """Waits for the next record's turn; returns the seconds slept."""
        now = self._clock()
        if self._start is None:
            self._start = now
        target = self._start
        if self.rate:
            target = max(target, self._start + self._count / self.rate)
        if self.speedup and published_at is not None:
            if self._t0 is None:
                self._t0 = published_at
            if self._latest is None or published_at > self._latest:
                self._latest = published_at
                offset = (published_at - self._t0).total_seconds() / self.speedup
                target = max(target, self._start + offset)
        self._count += 1
        delay = target - now
        if delay > 0:
            self._sleep(delay)
            return delay
        return 0.0


def replay(
    path: Path,
    format: str,
    publisher: Publisher,
    topics: Mapping[str, str],
    *,
    limit: int | None = None,
    rate: float | None = None,
    speedup: float | None = None,
    progress: bool = True,
    mapping: Mapping[str, str] | None = None,
    source: str | None = None,
    kind: str = "news",
    max_bytes: int = DEFAULT_MAX_BYTES,
    stop: threading.Event | None = None,
) -> ReplayStats:
    """Publishes ``path`` to the topic of each message's kind (``topics``: kind -> topic) and
    flushes; returns what was sent. Malformed rows go to the topic of their apparent kind.

    ``stop`` (set by a signal handler) ends the replay early but cleanly: what was sent is
    flushed, and ``stats.stopped`` says so."""
    missing = [k for k in KINDS if k not in topics]
    if missing:
        raise ReplayError(f"no topic given for kind(s) {', '.join(missing)}")
    if limit is not None and limit < 0:
        raise ReplayError(f"--limit must be positive (got {limit})")
    pacer = Pacer(rate, speedup, sleep=stop.wait if stop is not None else time.sleep)
    items = open_source(path, format, mapping=mapping, source=source, kind=kind,
                        max_bytes=max_bytes)
    stats = ReplayStats()
    bar = tqdm(total=limit, unit="msg", desc=f"replay {path.name}", disable=not progress)
    try:
        for item in items:
            if limit is not None and stats.sent >= limit:
                break
            if stop is not None and stop.is_set():
                stats.stopped = True
                break
            if isinstance(item, Message):
                pacer.wait(item.published_at)
                topic = topics[item.kind]
                publisher.publish(item, topic)
            else:
                pacer.wait(None)
                topic = topics[_sniff_kind(item) or kind]
                publisher.publish_raw(topic, item)
                stats.malformed += 1
            stats.sent += 1
            stats.by_topic[topic] += 1
            bar.update(1)
    except BaseException:
        # Interrupted (Ctrl-C, bad file): what was already handed to Kafka still gets out.
        bar.close()
        try:
            publisher.flush()
        except IngestError as flush_error:
            log.error("records sent before the interruption may be lost: %s", flush_error)
        raise
    bar.close()
    publisher.flush()
    return stats


# -- helpers ------------------------------------------------------------------------------


def _validated(data: dict[str, Any], where: str) -> Item:
    try:
        return Message.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        log.warning("%s: %s: %s; sent as is (it will be dead-lettered)", where, loc, first["msg"])
        return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")


def _sniff_kind(raw: bytes) -> str | None:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if kind in KINDS else None


def _split_tickers(cell: str) -> list[str]:
    return [t for t in _TICKER_SPLIT.split(cell.strip()) if t]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv", ".tsv", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name or "csv"


def _resolve_columns(
    header: list[str], mapping: Mapping[str, str], path: Path
) -> dict[str, str]:
    """field -> column: identity for header names that are schema fields, then ``mapping``."""
    columns = {c: c for c in header if c in _MESSAGE_FIELDS}
    for name, column in mapping.items():
        if column not in header:
            raise ReplayError(
                f"--map {name}={column}: no column {column!r} in {path} "
                f"(columns: {', '.join(header) or 'none'})"
            )
        columns[name] = column
    if "text" not in columns:
        raise ReplayError(
            f"{path} has no text column; map one with --map text=COLUMN "
            f"(columns: {', '.join(header) or 'none'})"
        )
    return columns


def _require_columns(header: list[str] | None, needed: tuple[str, ...], path: Path) -> None:
    missing = [c for c in needed if c not in (header or [])]
    if missing:
        raise ReplayError(f"{path} lacks column(s) {', '.join(missing)}; is it the right format?")


def _rows(reader: csv.DictReader[str], path: Path) -> Iterator[dict[str, str]]:
    try:
        yield from reader
    except csv.Error as e:
        raise ReplayError(f"{path} line {reader.line_num}: bad CSV: {e}") from e
    except UnicodeDecodeError as e:
        raise ReplayError(f"{path} is not UTF-8 text: {e}") from e
    except (OSError, EOFError) as e:  # truncated or corrupt .gz
        raise ReplayError(f"cannot read {path}: {e}") from e


def _lines(f: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from f
    except (OSError, EOFError) as e:  # truncated or corrupt .gz
        raise ReplayError(f"cannot read {path}: {e}") from e


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise ReplayError(f"cannot open {path}: {e}") from e


def _open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="")
