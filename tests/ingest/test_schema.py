"""Message schema v1: what is accepted, normalized, kept, and refused with which reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.exceptions import IngestError, InvalidRecord
from ingest.schema import Message, decode, encode

MAX = 1_000_000


def raw(**fields: object) -> bytes:
    base: dict[str, object] = {"id": "a1", "source": "reuters", "kind": "news", "text": "Up 5%"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def reason_of(value: bytes | None, max_bytes: int = MAX) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode(value, max_bytes=max_bytes)
    assert isinstance(info.value, IngestError)
    return info.value.reason


def test_good_message_with_all_fields() -> None:
    msg = decode(
        raw(
            title="Apple rallies",
            published_at="2024-03-01T14:30:00+02:00",
            tickers=["$aapl", " msft ", "AAPL", ""],
            url="https://x.example/1",
            author="Jane",
            lang="en",
        ),
        max_bytes=MAX,
    )
    assert (msg.id, msg.source, msg.kind, msg.text) == ("a1", "reuters", "news", "Up 5%")
    assert msg.published_at == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    assert msg.published_at.tzinfo is UTC
    assert msg.tickers == ["AAPL", "MSFT"]
    assert msg.dedupe_key == "reuters:a1"
    assert msg.extra_fields() == {}


def test_naive_time_is_read_as_utc() -> None:
    msg = decode(raw(published_at="2014-01-01T03:59:03"), max_bytes=MAX)
    assert msg.published_at == datetime(2014, 1, 1, 3, 59, 3, tzinfo=UTC)


def test_unknown_fields_are_kept_and_survive_encoding() -> None:
    msg = decode(raw(sentiment_hint="bullish", meta={"votes": 3}), max_bytes=MAX)
    assert msg.extra_fields() == {"sentiment_hint": "bullish", "meta": {"votes": 3}}
    again = decode(encode(msg), max_bytes=MAX)
    assert again == msg
    assert again.extra_fields() == msg.extra_fields()


def test_encode_leaves_out_unset_optionals_and_writes_utc() -> None:
    msg = Message(id="1", source="s", kind="comment", text="t",
                  published_at=datetime(2020, 1, 1, 0, 0))
    data = json.loads(encode(msg))
    assert data == {"id": "1", "source": "s", "kind": "comment", "text": "t",
                    "published_at": "2020-01-01T00:00:00Z", "tickers": []}


def test_message_is_frozen() -> None:
    msg = decode(raw(), max_bytes=MAX)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        msg.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (raw(id=...), "schema: id: Field required"),
        (raw(id=12345), "schema: id: must be a string, got number"),
        (raw(id=""), "schema: id: String should have at least 1 character"),
        (raw(id="x" * 257), "schema: id: String should have at most 256 characters"),
        (raw(source=...), "schema: source: Field required"),
        (raw(source="s" * 65), "schema: source: String should have at most 64 characters"),
        (raw(kind="blog"), "schema: kind: Input should be 'news' or 'comment'"),
        (raw(text=...), "schema: text: Field required"),
        (raw(text="   \n"), "schema: text: must not be blank"),
        (raw(text=["a"]), "schema: text: must be a string, got array"),
        (raw(published_at=1700000000), "schema: published_at: must be an ISO 8601 string, got int"),
        (raw(published_at="yesterday"), "schema: published_at: Input should be a valid datetime"),
        (raw(tickers="AAPL"), "schema: tickers: must be an array, got string"),
        (raw(tickers=[1]), "schema: tickers.0: must be a string, got number"),
        (raw(tickers=["NOT A TICKER"]), "schema: tickers: 'NOT A TICKER' is not a ticker symbol"),
        (raw(lang="x" * 17), "schema: lang: String should have at most 16 characters"),
        (raw(text="a\u0000b"), "schema: text: contains a NUL character"),
        (b'{"id":"1","source":"s","kind":"news","text":"a\\ud800"}', "not valid UTF-8: text"),
        (b"\xff\xfe{}", "not valid UTF-8: 'utf-8' codec can't decode byte 0xff"),
        (b'{"id": "1",', "not JSON: Expecting property name"),
        (b'{"id":"1","source":"s","kind":"news","text":"a","x":NaN}', "not JSON: NaN is not"),
        (b'{"id":"1","source":"s","kind":"news","text":"a","x":1e400}', "not JSON: number 1e400"),
        (b"[1, 2]", "JSON is not an object (got array)"),
        (b'"text"', "JSON is not an object (got string)"),
        (b"", "not JSON: Expecting value at line 1 column 1"),
        (None, "record has no value"),
    ],
)
def test_bad_records_are_refused_with_a_reason(value: bytes | None, expected: str) -> None:
    assert reason_of(value).startswith(expected)


def test_all_schema_problems_are_listed_together() -> None:
    reason = reason_of(b'{"kind": "x", "text": ""}')
    for part in ("id: Field required", "source: Field required", "kind:", "text:"):
        assert part in reason
    assert reason.count(";") == 3


def test_huge_record_refused_before_parsing() -> None:
    value = raw(text="x" * 5_000_000)
    assert reason_of(value, max_bytes=MAX) == f"record larger than {MAX} bytes ({len(value)} bytes)"


def test_deep_json_is_refused_without_crashing() -> None:
    unclosed = b'{"id":"1","source":"s","kind":"news","text":"a","x":' + b"[" * 200_000
    assert reason_of(unclosed) == "not JSON: nested too deeply to parse"
    closed = b'{"id":"1","source":"s","kind":"news","text":"a","x":' + b"[" * 100 + b"]" * 100
    assert "nested deeper than" in reason_of(closed + b"}")


def test_messages_built_in_python_are_held_to_the_same_rules() -> None:
    with pytest.raises(ValueError, match="meta.note: contains a NUL character"):
        Message(id="1", source="s", kind="news", text="ok", meta={"note": "a\x00"})
    with pytest.raises(ValueError, match="nested deeper than"):
        deep: list = []
        for _ in range(40):
            deep = [deep]
        Message(id="1", source="s", kind="news", text="ok", deep=deep)


def test_bom_is_tolerated() -> None:
    assert decode(b"\xef\xbb\xbf" + raw(), max_bytes=MAX).id == "a1"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_decode(value: bytes) -> None:
    try:
        msg = decode(value, max_bytes=MAX)
    except InvalidRecord as e:
        assert e.reason
    else:
        assert msg.text.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    id_=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\x00" not in s),
    text=st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and "\x00" not in s),
    kind=st.sampled_from(["news", "comment"]),
    extra=st.dictionaries(st.sampled_from(["a", "b", "meta"]), json_values, max_size=2),
)
def test_encode_decode_round_trip(id_: str, text: str, kind: str, extra: dict) -> None:
    try:
        original = Message(id=id_, source="src", kind=kind, text=text, **extra)
    except ValueError as e:
        assert "NUL" in str(e) or "surrogate" in str(e)  # refused as decode would refuse it
        return
    assert decode(encode(original), max_bytes=MAX) == original
