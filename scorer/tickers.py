"""Which tickers a document talks about: explicit tickers, cashtags, and company names.

Decisions that are not obvious from the code:

- Symbols are normalized so that one company has one key in the ``mentions`` table: upper
  case, ``$`` stripped, and a share-class separator written as ``.`` (StockNet's ``BRK-A`` and
  ``RDS-B``, StockTwits' ``BRK/B`` become ``BRK.A``, ``RDS.B``, ``BRK.B``, as in the reference).
- Precedence ``explicit > cashtag > name``: a producer's ``tickers`` field is kept even for a
  symbol outside the reference; a cashtag for an unknown symbol is kept only when written in
  upper case (``$XYZ``), while ``$xyz`` must be a known symbol, and ``$100`` or ``$5B`` are
  amounts, never tickers. ``NYSE: F`` / ``(Nasdaq: AAPL)`` count as cashtags (a symbol written
  in the text), which is the only way a bare one-letter symbol is ever read from text.
- Names and aliases match case-sensitively on word boundaries: ``apple pie`` is not Apple, nor
  is ``target price``. Capitalized common words are guarded by a short context list
  (``Target price``, ``Visa application``, ``Apple pie``, ``Harrison Ford``); a capitalized
  word at the start of an unrelated sentence can still match: precision is high, not perfect.
- An alias may sit on several rows (Google on GOOGL and GOOG, Facebook on META and FB): a name
  resolves to the first such row in the reference, unless the document already names one of
  the others by explicit ticker or cashtag, in which case the name adds nothing. The shipped
  CSV therefore lists current listings before older symbols and second share classes.
- All names, cashtags and exchange-qualified symbols are found by ONE compiled regex whose
  name part is a prefix trie, so the cost per text does not grow with the number of aliases.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scorer.exceptions import ScorerError

REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "tickers.csv"
MAX_SYMBOL_CHARS = 16  # the width of mentions.ticker and tickers.symbol
HOWS = ("explicit", "cashtag", "name")  # in order of precedence
_COLUMNS = ("symbol", "name", "aliases", "sector")

_CLASS_SHARE = re.compile(r"([A-Z]{1,5})[-./ ]([A-Z]{1,2})")
_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*$")
_PREV_WORD = re.compile(r"([\w.'&-]+)\W*$")
_NEXT_WORD = re.compile(r"\W*([\w'-]+)")
_NUMBER = re.compile(r"[\d.,%]+")
_CASHTAG = r"\$(?<![\w$]\$)(?P<cbase>[A-Za-z]{1,5})(?:[.\-/](?P<csuf>[A-Za-z]{1,2}))?(?!\w)"
_EXCHANGE = (
    r"(?<!\w)(?:NYSE(?: ?American| ?Arca| ?MKT)?|NASDAQ(?:GS|GM|CM)?|Nasdaq(?:GS|GM|CM)?"
    r"|AMEX|TSX|OTC(?:QX|QB)?) ?: ?(?P<xbase>[A-Z]{1,5})(?:[.\-/](?P<xsuf>[A-Z]{1,2}))?(?!\w)"
)

# Capitalized aliases that are also ordinary words or names: (previous words, next words) that
# mean the ordinary sense. Compared in lower case; "#" stands for any number ("50 BP hike").
_CONTEXT_VETO: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    alias: (frozenset(prev), frozenset(nxt))
    for alias, prev, nxt in [
        ("Apple", ("big", "candy", "crab", "toffee"),
         ("pie", "pies", "cider", "juice", "orchard", "orchards", "tree", "trees", "sauce",
          "seeds", "picking", "crumble")),
        ("Target", ("price", "upside", "downside", "profit", "my", "our", "new", "next", "first",
                    "second", "third", "final", "1st", "2nd", "3rd", "pt", "raises", "raised",
                    "lowers", "lowered", "cuts", "sets", "hits", "reaches", "inflation"),
         ("#", "price", "prices", "date", "dates", "rate", "rates", "range", "ranges", "level",
          "levels", "zone", "zones", "audience", "audiences", "market", "markets", "hit",
          "reached", "of", "for", "practice", "group", "lifted", "raised", "cut", "lowered",
          "increased", "boosted", "trimmed", "reduced", "met", "acquired")),
        ("Visa", (), ("application", "applications", "applicant", "applicants", "requirement",
                      "requirements", "rule", "rules", "holder", "holders", "waiver", "waivers",
                      "policy", "policies", "program", "programs", "programme", "sponsorship",
                      "restriction", "restrictions", "ban", "bans", "status", "free",
                      "processing", "interview", "interviews", "overstay", "overstays",
                      "lottery", "denial", "denials", "backlog", "backlogs", "office")),
        ("Ford", ("harrison", "gerald", "tom", "betty", "john", "president", "rob", "doug"),
         ("foundation",)),
        ("Amazon", (), ("rainforest", "river", "basin", "jungle", "forest", "region", "tribe",
                        "tribes", "delta")),
        ("Shell", ("rear", "back", "outer", "hard", "egg", "sea", "nut", "empty", "bash"),
         ("company", "companies", "corporation", "corporations", "game", "games", "script",
          "scripts", "shock", "out", "fish", "casing")),
        ("Oracle", (), ("of",)),
        ("Alphabet", (), ("soup",)),
        ("Meta", (), ("financial", "materials", "analysis", "analyses", "data", "description",
                      "descriptions", "tag", "tags", "study", "studies")),
        ("Hilton", ("paris", "perez"), ()),
        ("Tesla", ("nikola",), ("coil", "coils", "unit", "units")),
        ("Abbott", ("greg", "tony", "governor", "gov", "gov.", "bud", "australia's", "minister",
                    "pm"), ()),
        ("Schwab", ("klaus",), ()),
        ("Best Buy", (), ("of", "for")),
        ("BP", ("#",), ("hike", "hikes", "cut", "cuts", "rise", "rises", "move", "moves")),
        ("GM", ("#", "nfl", "nba", "mlb", "nhl", "team", "assistant"),
         ("everyone", "all", "guys", "fam", "friends", "traders", "folks", "team", "crops", "crop",
          "food", "foods", "seeds", "salmon", "mosquitoes")),
        ("ADP", (), ("news",)),
    ]
}


@dataclass(frozen=True)
class TickerRef:
    """One row of the reference table; ``aliases`` are the names news uses for the company."""

    symbol: str
    name: str
    aliases: tuple[str, ...]
    sector: str | None


def normalize_symbol(raw: str) -> str | None:
    """Canonical symbol, or None for something that cannot be one (blank, spaced, too long)."""
    symbol = raw.strip().lstrip("$").strip().upper()
    m = _CLASS_SHARE.fullmatch(symbol)
    if m:
        symbol = f"{m.group(1)}.{m.group(2)}"
    if not symbol or len(symbol) > MAX_SYMBOL_CHARS or any(c.isspace() for c in symbol):
        return None
    return symbol


def load_reference(path: Path | None = None) -> list[TickerRef]:
    """Rows of a reference CSV (``symbol,name,aliases,sector``; default: the shipped table)."""
    path = REFERENCE_CSV if path is None else Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return _parse_reference(csv.DictReader(f), path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ScorerError(f"cannot read the ticker reference {path}: {e}") from e


def _parse_reference(reader: csv.DictReader[str], path: Path) -> list[TickerRef]:
    missing = [c for c in ("symbol", "name") if c not in (reader.fieldnames or ())]
    if missing:
        raise ScorerError(
            f"ticker reference {path} lacks the column(s) {', '.join(missing)}; "
            f"expected a header {','.join(_COLUMNS)}"
        )
    refs: list[TickerRef] = []
    seen: dict[str, int] = {}
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        raw_symbol = (row.get("symbol") or "").strip()
        symbol = normalize_symbol(raw_symbol)
        if symbol is None:
            raise ScorerError(f"{where}: {raw_symbol!r} is not a ticker symbol")
        if symbol in seen:
            raise ScorerError(f"{where}: symbol {symbol} repeats line {seen[symbol]}")
        seen[symbol] = reader.line_num
        name = (row.get("name") or "").strip()
        if not name:
            raise ScorerError(f"{where}: {symbol} has no name")
        aliases = tuple(dict.fromkeys(a.strip() for a in (row.get("aliases") or "").split("|")))
        aliases = tuple(a for a in aliases if a)
        for alias in aliases:
            _check_alias(alias, symbol, where)
        sector = (row.get("sector") or "").strip() or None
        refs.append(TickerRef(symbol=symbol, name=name, aliases=aliases, sector=sector))
    if not refs:
        raise ScorerError(f"ticker reference {path} has no rows")
    return refs


def _check_alias(alias: str, symbol: str, where: str) -> None:
    # A one-letter alias would match every bare "F" or "T"; such symbols come only as cashtags.
    if len(alias) < 2:
        raise ScorerError(
            f"{where}: alias {alias!r} of {symbol} is too short to match safely as a word; "
            "one-letter symbols are found through cashtags and explicit tickers only"
        )


def reference_rows(path: Path | None = None) -> list[dict[str, str | None]]:
    """Rows for the ``tickers`` table (aliases ``|``-joined), from the same reference file."""
    return [
        {
            "symbol": ref.symbol,
            "name": ref.name,
            "aliases": "|".join(ref.aliases) or None,
            "sector": ref.sector,
        }
        for ref in load_reference(path)
    ]


def _match_names(ref: TickerRef) -> list[str]:
    """The texts that name ``ref`` in prose: its name (without a ``(Class A)`` note) and aliases."""
    name = _PARENTHETICAL.sub("", ref.name).strip()
    texts = [name] if len(name) >= 2 else []
    return list(dict.fromkeys([*texts, *ref.aliases]))


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching exactly ``words``, longest first, factored by common prefix."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    if not trie:
        return "(?!)"
    return _node_pattern(trie)


def _node_pattern(node: dict[str, dict]) -> str:
    ends_here = "" in node
    branches = [re.escape(ch) + _node_pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    single_chars = all(len(b) == 1 or (len(b) == 2 and b[0] == "\\") for b in branches)
    if len(branches) == 1:
        body = branches[0]
        grouped = len(body) <= 2 and single_chars
    elif single_chars:
        body, grouped = "[" + "".join(branches) + "]", True
    else:
        body, grouped = "(?:" + "|".join(branches) + ")", True
    if ends_here:  # greedy "?": the longer alias is tried first, the shorter on backtracking
        return (body if grouped else f"(?:{body})") + "?"
    return body


class TickerExtractor:
    """Finds ticker mentions in one text; immutable, so one instance serves every thread."""

    def __init__(self, refs: Sequence[TickerRef]) -> None:
        self.refs: tuple[TickerRef, ...] = tuple(refs)
        self.symbols: frozenset[str] = frozenset(ref.symbol for ref in self.refs)
        holders: dict[str, list[str]] = {}
        for ref in self.refs:
            for text in _match_names(ref):
                _check_alias(text, ref.symbol, "ticker reference")
                owners = holders.setdefault(text, [])
                if ref.symbol not in owners:
                    owners.append(ref.symbol)
        self._holders: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in holders.items()}
        names = _trie_pattern(self._holders)
        self._regex = re.compile(f"{_CASHTAG}|{_EXCHANGE}|(?<!\\w)(?P<name>{names})(?!\\w)")

    @classmethod
    def default(cls) -> TickerExtractor:
        """The extractor over the shipped reference table, built once per process."""
        return _default_extractor()

    def extract(
        self, text: str, *, title: str | None = None, explicit: Sequence[str] | None = ()
    ) -> list[tuple[str, str]]:
        """``[(symbol, how)]``: explicit tickers first, then the rest by first appearance."""
        rank: dict[str, int] = {}  # each symbol's best "how" over the whole document
        for raw in explicit or ():
            symbol = normalize_symbol(raw)
            if symbol is not None:
                rank.setdefault(symbol, 0)
        seen: list[str | tuple[str, ...]] = []  # symbols and name holders, in text order
        for part in (title, text):
            if part:
                self._scan(part, seen)
        found = dict.fromkeys(rank)  # explicit tickers lead, in the order given
        for hit in seen:
            if isinstance(hit, str):
                rank.setdefault(hit, 1)
        for hit in seen:
            if isinstance(hit, str):
                found.setdefault(hit)
            else:  # a name stands for a holder already named by symbol, else for the first one
                named = [symbol for symbol in hit if symbol in rank]
                found.setdefault(named[0] if named else hit[0])
        return [(symbol, HOWS[rank.get(symbol, 2)]) for symbol in found]

    def _scan(self, part: str, seen: list[str | tuple[str, ...]]) -> None:
        for m in self._regex.finditer(part):
            alias = m.group("name")
            if alias is not None:
                if part.startswith("%", m.end()):  # "GM%" is a gross margin, never a company
                    continue
                if alias in _CONTEXT_VETO and _vetoed(alias, part, m.start(), m.end()):
                    continue
                seen.append(self._holders[alias])
                continue
            if m.group("cbase") is not None:
                symbol = self._symbol(m.group("cbase"), m.group("csuf"))
            else:
                symbol = self._symbol(m.group("xbase"), m.group("xsuf"))
            if symbol is not None:
                seen.append(symbol)

    def _symbol(self, base: str, suffix: str | None) -> str | None:
        """A written symbol: a known one, else (only when in upper case) taken as written."""
        upper = base.upper()
        if suffix:
            with_class = f"{upper}.{suffix.upper()}"
            if with_class in self.symbols:
                return with_class
            if upper in self.symbols:
                return upper
            if base.isupper() and suffix.isupper() and len(suffix) == 1:
                return with_class
        elif upper in self.symbols:
            return upper
        return upper if base.isupper() else None


def _vetoed(alias: str, part: str, start: int, end: int) -> bool:
    prev_words, next_words = _CONTEXT_VETO[alias]
    if prev_words:
        m = _PREV_WORD.search(part, max(0, start - 40), start)
        if m:
            word = m.group(1).lower()
            if word in prev_words or ("#" in prev_words and _NUMBER.fullmatch(word)):
                return True
    if next_words:
        m = _NEXT_WORD.match(part, end, end + 40)
        if m:
            word = m.group(1).lower()
            if word in next_words or ("#" in next_words and _NUMBER.fullmatch(word)):
                return True
    return False


@functools.cache
def _default_extractor() -> TickerExtractor:
    return TickerExtractor(load_reference())
