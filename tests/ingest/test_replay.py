"""Replay readers (nothing dropped: bad rows come out as raw bytes), pacing, and replay onto
a real broker."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from ingest.exceptions import InvalidRecord, ReplayError
from ingest.producer import Publisher, make_producer
from ingest.replay import (
    Pacer,
    open_source,
    parse_mapping,
    read_csv,
    read_jsonl,
    read_stockemotions,
    read_stocknet,
    replay,
)
from ingest.schema import Message, decode

GOOD = {"id": "1", "source": "wire", "kind": "news", "text": "Apple beats estimates"}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_keeps_malformed_lines_as_raw_bytes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [
        json.dumps(GOOD),
        "",
        '{"id": "2", "source": "wire", "kind": "news"',  # cut short
        json.dumps({**GOOD, "id": 3}),  # wrong type
        json.dumps({**GOOD, "id": "4", "kind": "comment", "extra": [1, 2]}),
    ])
    items = list(read_jsonl(path))
    assert len(items) == 4  # the blank line is not a record
    assert isinstance(items[0], Message) and items[0].id == "1"
    assert items[1] == b'{"id": "2", "source": "wire", "kind": "news"'
    assert isinstance(items[2], bytes)
    with pytest.raises(InvalidRecord, match="id: must be a string"):
        decode(items[2], max_bytes=10_000)
    assert isinstance(items[3], Message) and items[3].extra_fields() == {"extra": [1, 2]}


def test_jsonl_gzip_and_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "text": "x" * 5000}) + "\n")
    items = list(read_jsonl(path, max_bytes=1000))
    assert isinstance(items[0], Message)
    assert isinstance(items[1], bytes) and len(items[1]) > 5000


def test_csv_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text(
        "uid,body,when,syms,title,label\n"
        "a1,Tesla deliveries disappoint,2024-01-02T10:00:00Z,TSLA;$f,Weak quarter,neg\n"
        "a2,,2024-01-02T11:00:00Z,,,pos\n"
        'a3,"multi\nline, with comma",,AAPL,,neu\n',
        encoding="utf-8",
    )
    mapping = parse_mapping(["id=uid", "text=body", "published_at=when", "tickers=syms",
                             "label=label"])
    items = list(read_csv(path, mapping, kind="comment"))
    assert len(items) == 3
    first = items[0]
    assert isinstance(first, Message)
    assert (first.id, first.source, first.kind, first.title) == ("a1", "posts", "comment",
                                                                 "Weak quarter")
    assert first.tickers == ["TSLA", "F"]
    assert first.published_at == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert first.extra_fields() == {"label": "neg"}
    assert isinstance(items[1], bytes)  # empty text: sent raw, to be dead-lettered
    assert json.loads(items[1])["id"] == "a2"
    assert isinstance(items[2], Message) and items[2].text == "multi\nline, with comma"


def test_csv_without_id_column_gets_stable_row_ids(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("text\nfirst\nsecond\n", encoding="utf-8")
    ids = [m.id for m in read_csv(path, source="blog") if isinstance(m, Message)]
    assert ids == ["h-1", "h-2"]
    assert ids == [m.id for m in read_csv(path, source="blog") if isinstance(m, Message)]


@pytest.mark.parametrize(
    ("pairs", "match"),
    [(["text"], "expected FIELD=COLUMN"), (["=body"], "expected FIELD=COLUMN"),
     (["text=a", "text=b"], "mapped twice")],
)
def test_bad_map_arguments(pairs: list[str], match: str) -> None:
    with pytest.raises(ReplayError, match=match):
        parse_mapping(pairs)


def test_csv_mapping_to_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ReplayError, match="no column 'body'.*columns: a, b"):
        list(read_csv(path, {"text": "body"}))
    with pytest.raises(ReplayError, match="no text column"):
        list(read_csv(path, {}))


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such file"):
        open_source(tmp_path / "nope.jsonl", "jsonl")
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(ReplayError, match="unknown format 'xml'"):
        open_source(tmp_path / "a.jsonl", "xml")
    with pytest.raises(ReplayError, match="--map applies to --format csv only"):
        open_source(tmp_path / "a.jsonl", "jsonl", mapping={"text": "body"})


@pytest.mark.data
def test_stocknet_rows(shared_data: Path) -> None:
    path = shared_data / "stocknet" / "stocknet_tweets_raw.csv.gz"
    items = []
    for item in read_stocknet(path):
        items.append(item)
        if len(items) == 300:
            break
    assert all(isinstance(m, Message) for m in items)
    first = items[0]
    assert first.source == "stocknet" and first.kind == "comment"
    assert first.published_at is not None and first.published_at.tzinfo is UTC
    assert len(first.tickers) == 1 and first.id.isdigit()
    assert {m.extra_fields().get("retweet") for m in items} <= {True, False}


@pytest.mark.data
def test_stockemotions_folder_in_date_order(shared_data: Path) -> None:
    items = list(read_stockemotions(shared_data / "stockemotions"))
    assert len(items) == 10_000
    assert all(isinstance(m, Message) for m in items)
    times = [m.published_at for m in items if isinstance(m, Message)]
    assert times == sorted(times)
    sample = items[0]
    assert isinstance(sample, Message)
    assert sample.source == "stocktwits" and sample.kind == "comment"
    assert sample.extra_fields()["senti_label"] in {"bullish", "bearish"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.now += s


def test_pacer_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=4, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait(None)
    assert clock.slept == [0.25, 0.25, 0.25, 0.25]


def test_pacer_speedup_follows_timestamps_and_never_waits_for_the_past() -> None:
    clock = FakeClock()
    pacer = Pacer(speedup=60, clock=clock, sleep=clock.sleep)
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    for minutes in (0, 1, 3, 2, 3, 10):
        pacer.wait(t0 + timedelta(minutes=minutes))
    assert clock.slept == [1.0, 2.0, 7.0]  # 1 min -> 1 s; going back in time does not wait


def test_pacer_refuses_nonsense() -> None:
    with pytest.raises(ReplayError, match="--rate must be positive"):
        Pacer(rate=0)
    with pytest.raises(ReplayError, match="--speedup must be positive"):
        Pacer(speedup=-2)


def test_replay_onto_kafka_routes_by_kind_and_keeps_bad_lines(
    tansu: EmbeddedBroker, topic_names: dict[str, str], tmp_path: Path, read_topic
) -> None:
    path = write_jsonl(tmp_path / "mix.jsonl", [
        json.dumps(GOOD),
        json.dumps({**GOOD, "id": "2", "kind": "comment"}),
        json.dumps({**GOOD, "id": "3", "kind": "comment", "text": ""}),  # bad, kind comment
        "not json at all",
        json.dumps({**GOOD, "id": "5"}),
    ])
    topics = {"news": topic_names["news"], "comment": topic_names["comments"]}
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        stats = replay(path, "jsonl", pub, topics, limit=4, progress=False)
    assert (stats.sent, stats.malformed) == (4, 2)
    news = read_topic(topic_names["news"], 2)
    comments = read_topic(topic_names["comments"], 2)
    values = sorted(r.value for r in news)
    assert values[0] == b"not json at all"
    assert decode(values[1], max_bytes=10_000) == Message(**GOOD)
    assert sorted(r.key for r in news if r.key) == [b"wire:1"]
    assert len(comments) == 2
    assert stats.by_topic == {topic_names["news"]: 2, topic_names["comments"]: 2}


@pytest.mark.data
def test_replay_stocknet_with_limit(
    tansu: EmbeddedBroker, topic_names: dict[str, str], shared_data: Path, read_topic
) -> None:
    topics = {"news": topic_names["news"], "comment": topic_names["comments"]}
    with Publisher(make_producer(tansu.bootstrap)) as pub:
        stats = replay(shared_data / "stocknet" / "stocknet_tweets_raw.csv.gz", "stocknet",
                       pub, topics, limit=200, progress=False)
    assert (stats.sent, stats.malformed) == (200, 0)
    records = read_topic(topic_names["comments"], 200)
    assert len(records) == 200
    assert all(decode(r.value, max_bytes=100_000).source == "stocknet" for r in records)
