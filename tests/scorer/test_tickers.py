"""Ticker extraction: explicit tickers, cashtags, names; and the shipped reference table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.exceptions import ScorerError
from scorer.tickers import (
    HOWS,
    MAX_SYMBOL_CHARS,
    REFERENCE_CSV,
    TickerExtractor,
    TickerRef,
    load_reference,
    normalize_symbol,
    reference_rows,
)


@pytest.fixture(scope="module")
def ex() -> TickerExtractor:
    return TickerExtractor.default()


def symbols(pairs: list[tuple[str, str]]) -> list[str]:
    return [s for s, _ in pairs]


# --- cashtags ---------------------------------------------------------------------------


def test_cashtags_in_order_of_appearance(ex: TickerExtractor) -> None:
    got = ex.extract("Long $NVDA, short $AMD; watching $BRK.B into the close")
    assert got == [("NVDA", "cashtag"), ("AMD", "cashtag"), ("BRK.B", "cashtag")]


def test_amounts_are_not_cashtags(ex: TickerExtractor) -> None:
    assert ex.extract("Deal worth $100 now $5B, maybe $1.5bn or US$20; $$$ lol") == []


def test_unknown_cashtag_kept_only_in_upper_case(ex: TickerExtractor) -> None:
    assert ex.extract("$ZZZQ squeezes while $hello and $wow do nothing") == [("ZZZQ", "cashtag")]
    assert ex.extract("$tsla $aapl") == [("TSLA", "cashtag"), ("AAPL", "cashtag")]


def test_cashtag_class_share_spellings_normalize(ex: TickerExtractor) -> None:
    text = "$BRK-B vs $BRK/A vs $brk.b"
    assert ex.extract(text) == [("BRK.B", "cashtag"), ("BRK.A", "cashtag")]


def test_cashtag_sentence_punctuation_is_not_a_share_class(ex: TickerExtractor) -> None:
    assert ex.extract("Bought $AAPL.I think it runs. Also $MSFT.") == [
        ("AAPL", "cashtag"),
        ("MSFT", "cashtag"),
    ]


def test_cashtag_needs_a_boundary(ex: TickerExtractor) -> None:
    assert ex.extract("US$AAPL x$MSFT $AAPLXYZ") == []


def test_exchange_qualified_symbols(ex: TickerExtractor) -> None:
    text = "Ford Motor Co. (NYSE: F) and AT&T (NYSE:T) and a tiny one (Nasdaq: QQQZ)"
    assert ex.extract(text) == [("F", "cashtag"), ("T", "cashtag"), ("QQQZ", "cashtag")]
    assert ex.extract("Exxon Mobil Corporation (NYSE:XOM)") == [("XOM", "cashtag")]


# --- explicit ---------------------------------------------------------------------------


def test_explicit_tickers_always_kept_and_normalized(ex: TickerExtractor) -> None:
    got = ex.extract("nothing here", explicit=["$aapl", " zzzz ", "BRK-A", "RDS-B", "AAPL"])
    assert got == [
        ("AAPL", "explicit"),
        ("ZZZZ", "explicit"),
        ("BRK.A", "explicit"),
        ("RDS.B", "explicit"),
    ]


def test_explicit_garbage_is_dropped_not_raised(ex: TickerExtractor) -> None:
    got = ex.extract("x", explicit=["", "  ", "$", "TWO WORDS", "X" * (MAX_SYMBOL_CHARS + 1)])
    assert got == []
    assert ex.extract("x", explicit=None) == []


def test_precedence_explicit_then_cashtag_then_name(ex: TickerExtractor) -> None:
    got = ex.extract("Apple and Microsoft ($MSFT) and Intel", explicit=["INTC"])
    assert got == [("INTC", "explicit"), ("AAPL", "name"), ("MSFT", "cashtag")]


def test_each_symbol_once_title_before_text(ex: TickerExtractor) -> None:
    got = ex.extract(
        "Microsoft $MSFT and Apple again, Apple Inc. and $AAPL",
        title="Apple and Microsoft",
    )
    assert got == [("AAPL", "cashtag"), ("MSFT", "cashtag")]
    got = ex.extract("Boeing rose", title="Nvidia beats")
    assert got == [("NVDA", "name"), ("BA", "name")]


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alphabet reports", "GOOGL"),
        ("Google's cloud unit", "GOOGL"),
        ("Meta Platforms said", "META"),
        ("Facebook ads", "META"),
        ("JPMorgan Chase lifted its outlook", "JPM"),
        ("per J.P. Morgan analysts", "JPM"),
        ("JP Morgan says", "JPM"),
        ("Procter & Gamble and", "PG"),
        ("AT&T shares", "T"),
        ("Coca-Cola's margins", "KO"),
        ("Berkshire Hathaway bought more", "BRK.B"),
        ("Visa beats estimates", "V"),
        ("Target shares fell", "TGT"),
        ("Ford to add 3,000 jobs", "F"),
        ("Bank of America cut", "BAC"),
        ("Exxon Mobil Corporation reported", "XOM"),
    ],
)
def test_names_and_aliases(ex: TickerExtractor, text: str, expected: str) -> None:
    assert ex.extract(text) == [(expected, "name")]


def test_word_boundaries(ex: TickerExtractor) -> None:
    text = "Pineapple Applesauce Intelligence Metaverse Googled Cokes TeslaCoin"
    assert ex.extract(text) == []
    assert ex.extract("(Apple's) #Tesla @Boeing") == [
        ("AAPL", "name"),
        ("TSLA", "name"),
        ("BA", "name"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "raised the target price to $50",
        "my visa application was refused",
        "an apple pie and a nice ford",
        "Apple pie recipes for fall",
        "Price Target Increased to $34.00 at Needham",
        "Target $200 long term",
        "Visa application rules tightened",
        "Harrison Ford stars in the film",
        "Gross margin GM% under pressure",
        "( ADP News ) - Feb 11, 2009",
        "Shell Companies were detected",
        "the Oracle of Omaha speaks",
    ],
)
def test_no_false_positives(ex: TickerExtractor, text: str) -> None:
    assert ex.extract(text) == []


def test_single_letter_symbols_never_from_bare_words(ex: TickerExtractor) -> None:
    text = "F is a grade. T-shirts, C code, V for Vendetta, A day, X marks, O well, M and K."
    assert ex.extract(text) == []
    assert ex.extract(text + " $F and $c") == [("F", "cashtag"), ("C", "cashtag")]


def test_shared_alias_resolves_to_first_row_unless_another_holder_is_named(
    ex: TickerExtractor,
) -> None:
    assert ex.extract("Google search") == [("GOOGL", "name")]
    assert ex.extract("Google search", explicit=["GOOG"]) == [("GOOG", "explicit")]
    assert ex.extract("Facebook again $FB") == [("FB", "cashtag")]
    assert ex.extract("Royal Dutch Shell", explicit=["RDS-B"]) == [("RDS.B", "explicit")]


def test_every_shipped_alias_is_found_as_its_first_holder(ex: TickerExtractor) -> None:
    primary: dict[str, str] = {}
    for ref in load_reference():
        for alias in ref.aliases:
            primary.setdefault(alias, ref.symbol)
    misses = [
        (alias, symbol, got)
        for alias, symbol in primary.items()
        if (got := ex.extract(f"Shares of {alias} were active today.")) != [(symbol, "name")]
    ]
    assert misses == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("$AaBbFfTt.-/ 019:&'Apple"), max_size=60), st.text())
def test_any_text_gives_unique_valid_mentions(text: str, title: str) -> None:
    got = TickerExtractor.default().extract(text, title=title)
    syms = symbols(got)
    assert len(syms) == len(set(syms))
    for symbol, how in got:
        assert how in HOWS
        assert 0 < len(symbol) <= MAX_SYMBOL_CHARS
        assert symbol == symbol.upper()


# --- the reference and custom tables ------------------------------------------------------


def test_custom_reference() -> None:
    ex = TickerExtractor([TickerRef("ACME", "Acme Corporation (Class A)", ("Acme",), None)])
    assert ex.extract("Acme Corporation beat; Acme again") == [("ACME", "name")]
    assert ex.extract("ACME in caps is not the name") == []
    assert TickerExtractor([]).extract("Apple $AAPL") == [("AAPL", "cashtag")]


def test_one_letter_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("symbol,name,aliases,sector\nT,AT&T Inc.,AT&T|T,Telecom\n")
    with pytest.raises(ScorerError, match="too short"):
        load_reference(path)
    with pytest.raises(ScorerError, match="too short"):
        TickerExtractor([TickerRef("T", "AT&T", ("T",), None)])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("symbol,name\nAAA,One\naaa,Two\n", "repeats line 2"),
        ("symbol,aliases\nAAA,x\n", "lacks the column"),
        ("symbol,name\n,Nameless symbol\n", "not a ticker symbol"),
        ("symbol,name\nAAA,\n", "has no name"),
        ("symbol,name\n", "has no rows"),
    ],
)
def test_bad_reference_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ScorerError, match=message) as info:
        load_reference(path)
    assert str(path) in str(info.value)


def test_missing_reference_file(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="cannot read"):
        load_reference(tmp_path / "nope.csv")


def test_reference_rows_for_the_tickers_table() -> None:
    rows = reference_rows()
    assert len(rows) == len(load_reference())
    by_symbol = {r["symbol"]: r for r in rows}
    assert set(by_symbol["GOOGL"]) == {"symbol", "name", "aliases", "sector"}
    assert by_symbol["META"]["aliases"].split("|")[:3] == ["Meta Platforms", "Meta", "Facebook"]
    assert by_symbol["AAPL"]["sector"] == "Information Technology"


def test_normalize_symbol() -> None:
    assert normalize_symbol(" $brk-b ") == "BRK.B"
    assert normalize_symbol("BTC-USD") == "BTC-USD"
    assert normalize_symbol("^GSPC") == "^GSPC"
    assert normalize_symbol("A B C") is None


def test_shipped_csv_is_valid() -> None:
    with REFERENCE_CSV.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["symbol", "name", "aliases", "sector"]
        raw = list(reader)
    refs = load_reference()
    assert len(refs) >= 400
    assert [r["symbol"] for r in raw] == [ref.symbol for ref in refs]  # stored normalized
    assert len({ref.symbol for ref in refs}) == len(refs)
    assert all(ref.sector and ref.name for ref in refs)
    # Only explicitly listed brand spellings may start in lower case (case-sensitive matching).
    aliases = {a for ref in refs for a in ref.aliases}
    lower_start = {a for a in aliases if not a[0].isupper() and not a[0].isdigit()}
    assert lower_start == {"eBay", "onsemi"}


@pytest.mark.data
def test_covers_stocknet_and_stockemotions(shared_data: Path) -> None:
    known = {ref.symbol for ref in load_reference()}
    table = (shared_data / "stocknet" / "StockTable").read_text().splitlines()[1:]
    stocknet = {line.split("\t")[1] for line in table if line.strip()}
    stocknet |= {p.stem for p in (shared_data / "stocknet" / "price_raw").glob("*.csv")}
    emotions: set[str] = set()
    for split in ("train", "val", "test"):
        with (shared_data / "stockemotions" / f"{split}_stockemo.csv").open(newline="") as f:
            emotions |= {row["ticker"] for row in csv.DictReader(f)}
    assert len(stocknet) >= 87 and len(emotions) >= 37
    missing = sorted(s for s in stocknet | emotions if normalize_symbol(s) not in known)
    assert missing == []
