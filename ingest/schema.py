"""Message schema v1: the one contract between producers and workers (see DESIGN.md).

Decisions that are not obvious from the field list:

- Wrong JSON types are refused, never coerced: an ``id`` sent as a number is an error. Numeric
  ids above 2**53 lose digits in JavaScript producers, so accepting ints would silently merge
  different documents under one dedupe key ``(source, id)``.
- Field limits mirror the store's columns (``source`` 64, ``id`` 256, ``author`` 256, ``lang``
  16, a ticker 16), so a message that validates here can always be written; otherwise one bad
  record would fail its whole batch's transaction and block the partition.
- Strings may not hold NUL characters or lone surrogates anywhere in the record (PostgreSQL text
  and UTF-8 cannot store them), for the same reason.
- ``text`` is kept as sent (only checked non-blank); ``tickers`` are normalized (``$`` and
  whitespace stripped, upper case, duplicates removed) because they are join keys.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.exceptions import InvalidRecord

SCHEMA_VERSION = 1
MAX_DEPTH = 32  # nesting allowed in a record; real messages are 2-3 levels deep
MAX_TICKERS = 64
MAX_TICKER_CHARS = 16
_MAX_REASON_ERRORS = 5

Kind = Literal["news", "comment"]
KINDS: tuple[str, ...] = ("news", "comment")

_OPTIONAL_FIELDS = ("title", "published_at", "url", "author", "lang")


class Message(BaseModel):
    """One news article or comment, as it travels on ``finsent.news`` / ``finsent.comments``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    source: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    kind: Kind
    text: StrictStr
    title: StrictStr | None = None
    published_at: datetime | None = None
    tickers: list[StrictStr] = Field(default_factory=list, max_length=MAX_TICKERS)
    url: StrictStr | None = None
    author: Annotated[StrictStr, Field(max_length=256)] | None = None
    lang: Annotated[StrictStr, Field(max_length=16)] | None = None

    @field_validator("id", "source", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("published_at", mode="before")
    @classmethod
    def _iso_only(cls, value: Any) -> Any:
        # Lax pydantic would read numbers as Unix times (seconds or ms, guessed): refuse them.
        if value is None or isinstance(value, str | datetime):
            return value
        raise ValueError(f"must be an ISO 8601 string, got {type(value).__name__}")

    @field_validator("published_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError as e:
            raise ValueError("is out of range once converted to UTC") from e

    @field_validator("tickers")
    @classmethod
    def _normalize_tickers(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for raw in value:
            symbol = raw.strip().lstrip("$").strip().upper()
            if not symbol:
                continue
            if len(symbol) > MAX_TICKER_CHARS or any(c.isspace() for c in symbol):
                raise ValueError(f"{raw[:40]!r} is not a ticker symbol")
            if symbol not in out:
                out.append(symbol)
        return out

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """The same depth/NUL/surrogate checks as ``decode``, for messages built in Python
        (replay, simulator, feeds), so what a producer sends is what a worker accepts."""
        if isinstance(data, dict):
            try:
                _check_tree(data)
            except InvalidRecord as e:
                raise ValueError(e.reason.removeprefix("schema: ")) from None
        return data

    def extra_fields(self) -> dict[str, Any]:
        """Fields outside schema v1, kept as sent (producers may add their own)."""
        return dict(self.model_extra or {})

    @property
    def dedupe_key(self) -> str:
        """The dedupe key ``source:id``; also the Kafka record key, so updates stay ordered."""
        return f"{self.source}:{self.id}"


def decode(value: bytes | None, *, max_bytes: int) -> Message:
    """Bytes of one Kafka record -> ``Message``, or ``InvalidRecord`` with a short reason.

    The size check comes first so that a huge record is refused before any parsing work.
    """
    if value is None:
        raise InvalidRecord("record has no value (null)")
    if len(value) > max_bytes:
        raise InvalidRecord(f"record larger than {max_bytes} bytes ({len(value)} bytes)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRecord(f"not valid UTF-8: {e}") from e
    text = text.removeprefix("\ufeff")
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as e:
        raise InvalidRecord("not JSON: nested too deeply to parse") from e
    except ValueError as e:  # JSONDecodeError and NaN/Infinity
        reason = (
            f"{e.msg} at line {e.lineno} column {e.colno}"
            if isinstance(e, json.JSONDecodeError)
            else str(e)
        )
        raise InvalidRecord(f"not JSON: {reason}") from e
    if not isinstance(obj, dict):
        raise InvalidRecord(f"JSON is not an object (got {_json_type(obj)})")
    _check_tree(obj)
    try:
        return Message.model_validate(obj)
    except ValidationError as e:
        raise InvalidRecord(f"schema: {_schema_reason(e)}") from e


def encode(msg: Message) -> bytes:
    """``Message`` -> compact UTF-8 JSON; optional fields that are unset are left out."""
    data = msg.model_dump(mode="json")
    for name in _OPTIONAL_FIELDS:
        if data.get(name) is None:
            data.pop(name, None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: JSON columns cannot store infinity
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _json_type(obj: Any) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, bool):
        return "boolean"
    if obj is None:
        return "null"
    return "number"


def _check_tree(root: dict[str, Any]) -> None:
    """Depth, NUL and lone-surrogate checks over every key and value, without recursion."""
    stack: list[tuple[Any, int, str]] = [(root, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRecord(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for k, v in node.items():
                where = f"{path}.{k}" if path else str(k)
                if isinstance(k, str):
                    _check_string(k, where)
                stack.append((v, depth + 1, where))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append((v, depth + 1, f"{path}[{i}]"))
        elif isinstance(node, str):
            _check_string(node, path)


def _check_string(s: str, where: str) -> None:
    if "\x00" in s:
        raise InvalidRecord(f"schema: {where[:80]}: contains a NUL character")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRecord(
            f"not valid UTF-8: {where[:80]}: lone surrogate escape in JSON string"
        ) from e


_TYPE_NAMES = {
    "string_type": "a string",
    "list_type": "an array",
    "datetime_type": "an ISO 8601 string",
}


def _schema_reason(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False)[:_MAX_REASON_ERRORS]:
        loc = ".".join(str(p) for p in err["loc"]) or "message"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in _TYPE_NAMES:
            msg = f"must be {_TYPE_NAMES[err['type']]}, got {_json_type(err['input'])}"
        parts.append(f"{loc}: {msg}")
    extra = e.error_count() - _MAX_REASON_ERRORS
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)
