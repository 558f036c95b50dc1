"""Hostile Kafka records, each built knowing what the worker must do with it.

Every builder takes a ``random.Random`` and returns a ``Hostile``: the record's bytes, whether
the worker must store it (``good``) or dead-letter it, and a word its dead-letter reason must
contain. The expectation comes from how the record was built, never from running the decoder,
so a decoder that wrongly accepts or refuses one fails the test.

The same builders serve the bulk generator (a seeded ``Random``: ``hostile_records``) and the
hypothesis property in ``test_hostile_input.py`` (``st.randoms()``), where hypothesis explores
and shrinks the choices.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SOURCE = "hostile"
MAX_MESSAGE_BYTES = 1_000_000  # the default FINSENT_MAX_MESSAGE_BYTES


@dataclass
class Hostile:
    value: bytes | None
    good: bool
    why: str | None = None  # lower-case word the dead-letter reason must contain
    doc: dict[str, Any] = field(default_factory=dict)  # the message, for good ones
    category: str = ""


Builder = Callable[[random.Random, str], Hostile]

SCRIPTS = [
    "株価が急落した。トヨタの決算は予想を下回った",
    "ارتفعت أسهم الشركة بعد إعلان الأرباح",
    "המניה עלתה ב-5% לאחר הדוח",
    "कंपनी के शेयर गिर गए",
    "Акции Газпрома выросли на 3%",
    "삼성전자 주가가 상승했다",
    "Η μετοχή υποχώρησε απότομα",
    "หุ้นร่วงหนักหลังประกาศผลประกอบการ",
    "🚀📈 $TSLA to the moon 🌕",
    "👨‍👩‍👧 family office buys ＡＡＰＬ",
    "Cafe\u0301 chain posts record profit",
    "e\u0301\u0302\u0303\u0304 zalgo t\u0336e\u0336x\u0336t",
    "\u202eevil right-to-left override\u202c shares fell",
    "zero\u200bwidth\u200cjoiners\u200d and \ufeff BOM inside",
]
CONTROL = [chr(c) for c in range(1, 32)] + ["\x7f", "\u2028", "\u2029", "\x85"]


def _base(rng: random.Random, ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "source": SOURCE,
        "kind": rng.choice(["news", "comment"]),
        "text": f"Shares of $AAPL {rng.choice(['rose', 'fell', 'held'])} {rng.randint(1, 9)}%",
    }


def _dumps(obj: Any, rng: random.Random) -> bytes:
    ascii_only = rng.random() < 0.5
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8")


def _good(obj: dict[str, Any], rng: random.Random, category: str) -> Hostile:
    return Hostile(_dumps(obj, rng), True, None, obj, category)


# --- good, however odd -------------------------------------------------------------------


def other_scripts(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    obj["text"] = " ".join(rng.sample(SCRIPTS, rng.randint(1, 3)))
    if rng.random() < 0.5:
        obj["title"] = rng.choice(SCRIPTS)
    obj["lang"] = rng.choice(["ja", "ar", "he", "hi", "ru", "ko", "el", "th", "und"])
    return _good(obj, rng, "other scripts")


def control_escaped(rng: random.Random, ident: str) -> Hostile:
    """Control characters escaped as JSON requires (``\\u0001``): valid, stored as sent."""
    obj = _base(rng, ident)
    obj["text"] = obj["text"] + "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 20)))
    return _good(obj, rng, "control characters (escaped)")


def extra_fields(rng: random.Random, ident: str) -> Hostile:
    """Unknown fields are kept, not refused (schema v1)."""
    obj = _base(rng, ident)
    for n in range(rng.randint(1, 5)):
        obj[f"x_{n}_{rng.choice(['meta', 'ñ', '数', 'id2'])}"] = rng.choice(
            [
                rng.randint(-(2**31), 2**31),
                rng.choice(SCRIPTS),
                [1, "two", None, True],
                {"nested": {"deeper": [rng.randint(0, 9)]}},
                None,
                False,
            ]
        )
    return _good(obj, rng, "extra fields")


def huge_but_allowed(rng: random.Random, ident: str) -> Hostile:
    """Far longer than the model reads (cut to max_text_chars) but under max_message_bytes:
    scored on its beginning, stored whole."""
    obj = _base(rng, ident)
    size = rng.randint(100_000, 600_000)
    words = ["revenue", "guidance", "$MSFT", "margin", "fell", "rose", "dividend", "ÅÄÖ"]
    text = []
    length = 0
    while length < size:
        w = rng.choice(words)
        text.append(w)
        length += len(w) + 1
    obj["text"] = " ".join(text)
    h = Hostile(json.dumps(obj).encode(), True, None, obj, "huge text (allowed)")
    assert len(h.value or b"") < MAX_MESSAGE_BYTES
    return h


def bom_prefixed(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    return Hostile(b"\xef\xbb\xbf" + _dumps(obj, rng), True, None, obj, "UTF-8 BOM")


# --- bad: each must be dead-lettered with its reason ----------------------------------------


def random_bytes(rng: random.Random, _ident: str) -> Hostile:
    prefix = rng.choice([b"", b"{", b'{"id": ', b"["])
    return Hostile(prefix + rng.randbytes(rng.randint(0, 300)), False, None,
                   category="random bytes")


def not_json(rng: random.Random, ident: str) -> Hostile:
    whole = json.dumps(_base(rng, ident))
    cut = whole[: rng.randint(0, len(whole) - 1)]
    variants = [cut, whole.replace(":", "=", 1), "{'id': 'single quotes'}", whole + "}",
                "", "   ", whole.replace('"', "", 2)]
    return Hostile(rng.choice(variants).encode(), False, "json", category="not JSON")


def deep_json(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    depth = rng.choice([rng.randint(33, 2000), rng.randint(50_000, 100_000)])  # < 1 MB
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nested = opener * depth + "1" + closer * depth
    raw = json.dumps(obj)[:-1] + f', "deep": {nested}' + "}"
    return Hostile(raw.encode(), False, "nested", category="deep JSON")


def control_raw(rng: random.Random, ident: str) -> Hostile:
    """A raw control character inside a JSON string: not JSON."""
    obj = _base(rng, ident)
    raw = json.dumps(obj)
    at = raw.index('"text": "') + len('"text": "') + 1
    ch = rng.choice([chr(c) for c in range(1, 32)])
    return Hostile((raw[:at] + ch + raw[at:]).encode(), False, "json",
                   category="control characters (raw)")


def control_nul(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    target = rng.choice(["text", "id", "title", "author", "extra key"])
    if target == "extra key":
        obj["x\u0000y"] = 1
    else:
        obj[target] = obj.get(target, "t") + "\u0000"
    return Hostile(_dumps(obj, rng), False, "nul", category="NUL character")


def invalid_utf8(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    raw = json.dumps(obj).encode()
    bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc",
                      b"\xf8\x88\x80\x80\x80", b"\xe2\x82"])
    at = raw.index(b'"text": "') + len(b'"text": "') + 1
    return Hostile(raw[:at] + bad + raw[at:], False, "utf-8", category="invalid UTF-8")


def lone_surrogate(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    raw = json.dumps(obj)
    at = raw.index('"text": "') + len('"text": "') + 1
    esc = rng.choice(["\\ud800", "\\udfff", "\\udc00x", "\\ud83d"])
    return Hostile((raw[:at] + esc + raw[at:]).encode(), False, "surrogate",
                   category="lone surrogate")


WRONG_TYPES: dict[str, list[Any]] = {
    "id": [123, 1.5, True, None, [], {}],
    "source": [7, None, ["wire"], {}],
    "kind": ["blog", 1, None, "NEWS", ""],
    "text": [5, [], {}, None, True],
    "title": [5, [], {"t": 1}, False],
    "tickers": ["AAPL", 5, [1, 2], [None], {"AAPL": 1}, ["TOO LONG TICKER"]],
    "published_at": [1_700_000_000, 1.5e12, "yesterday", [], "2024-13-45T00:00:00Z"],
    "url": [[], 1, {}],
    "author": [{}, 3, ["a"]],
    "lang": [3, [], "x" * 17],
}


def wrong_types(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    name = rng.choice(sorted(WRONG_TYPES))
    obj[name] = rng.choice(WRONG_TYPES[name])
    return Hostile(_dumps(obj, rng), False, name, category="wrong types")


def missing_fields(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    gone = rng.sample(["id", "source", "kind", "text"], rng.randint(1, 4))
    for name in gone:
        del obj[name]
    return Hostile(_dumps(obj, rng), False, "required", category="missing fields")


def blank_or_too_long(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    name, value, why = rng.choice([
        ("text", rng.choice(["", "   ", "\n\t "]), "text"),
        ("id", "  ", "id"),
        ("id", "i" * 257, "id"),
        ("source", "s" * 65, "source"),
        ("author", "a" * 257, "author"),
    ])
    obj[name] = value
    return Hostile(_dumps(obj, rng), False, why, category="blank / over-long field")


def not_an_object(rng: random.Random, _ident: str) -> Hostile:
    value = rng.choice(["[1, 2, 3]", '"just a string"', "42", "null", "true", "[{}]"])
    return Hostile(value.encode(), False, "not an object", category="JSON not an object")


def bad_numbers_and_dates(rng: random.Random, ident: str) -> Hostile:
    obj = _base(rng, ident)
    raw = json.dumps(obj)[:-1]
    extra, why = rng.choice([
        (', "x": NaN', "nan"),
        (', "x": Infinity', "infinity"),
        (', "x": 1e400', "range"),
        (', "published_at": "0001-01-01T00:00:00+05:00"', "range"),
        (', "published_at": "9999-12-31T23:59:59-05:00"', "range"),
    ])
    return Hostile((raw + extra + "}").encode(), False, why, category="NaN / out-of-range")


def null_or_empty(rng: random.Random, _ident: str) -> Hostile:
    if rng.random() < 0.5:
        return Hostile(None, False, "no value", category="null value")
    return Hostile(b"", False, "json", category="empty value")


def too_large(rng: random.Random, ident: str, size: int | None = None) -> Hostile:
    obj = _base(rng, ident)
    obj["text"] = "x" * (size or rng.randint(MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES))
    return Hostile(json.dumps(obj).encode(), False, "larger than", category="over max bytes")


def ten_mb(rng: random.Random, ident: str) -> Hostile:
    h = too_large(rng, ident, size=10 * 1024 * 1024)
    h.category = "10 MB value"
    return h


# (builder, share of the bulk); the huge ones have fixed counts below
WEIGHTED: list[tuple[Builder, int]] = [
    (random_bytes, 1400),
    (not_json, 700),
    (deep_json, 400),
    (control_raw, 400),
    (control_nul, 400),
    (control_escaped, 700),
    (invalid_utf8, 700),
    (lone_surrogate, 300),
    (wrong_types, 1500),
    (missing_fields, 900),
    (blank_or_too_long, 300),
    (not_an_object, 200),
    (bad_numbers_and_dates, 200),
    (null_or_empty, 60),
    (extra_fields, 700),
    (other_scripts, 800),
    (bom_prefixed, 100),
]
FIXED: list[tuple[Builder, int]] = [(huge_but_allowed, 8), (too_large, 4), (ten_mb, 3)]
BUILDERS: list[Builder] = [b for b, _ in WEIGHTED] + [huge_but_allowed, too_large]


def hostile_records(n: int, seed: int) -> list[Hostile]:
    """``n`` hostile records in a seeded order; every good one has a unique id."""
    rng = random.Random(seed)
    builders: list[Builder] = [b for b, k in FIXED for _ in range(k)]
    rest = n - len(builders)
    total = sum(k for _, k in WEIGHTED)
    for b, k in WEIGHTED:
        builders += [b] * (rest * k // total)
    while len(builders) < n:
        builders.append(rng.choice([b for b, _ in WEIGHTED]))
    rng.shuffle(builders)
    return [b(rng, f"h{i}") for i, b in enumerate(builders)]
