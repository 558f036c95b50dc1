"""Loading daily prices (StockNet ``price_raw/TICKER.csv``) for the ticker page's overlay.

The files are Yahoo-style daily OHLCV: ``Date,Open,High,Low,Close,Adj Close,Volume``, one file
per ticker named after it. Rows of ``null`` (market holidays in a few files) are skipped and
counted. Loading is an upsert on (ticker, day): re-running it with newer files updates in place.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from storage.db import wrap_error
from storage.exceptions import StorageError
from storage.models import Price

REQUIRED_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume")
PRICES = Price.__table__
_TICKER_MAX = PRICES.c.ticker.type.length or 16


@dataclass
class PriceLoad:
    """What a load did: files read, rows written, rows skipped (nulls), tickers seen."""

    files: int = 0
    rows: int = 0
    skipped: int = 0
    tickers: list[str] = field(default_factory=list)


def _number(value: str) -> float | None:
    value = value.strip()
    if value in ("", "null", "NaN", "nan"):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def read_price_csv(path: Path) -> tuple[str, list[dict[str, Any]], int]:
    """(ticker, rows, skipped) of one file; a file without the OHLCV columns is refused."""
    ticker = path.stem.upper()
    if not ticker or len(ticker) > _TICKER_MAX:
        raise StorageError(f"{path}: file name {path.stem!r} is not a ticker symbol")
    rows: list[dict[str, Any]] = []
    skipped = 0
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise StorageError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected a daily OHLCV "
                    f"CSV with {','.join(REQUIRED_COLUMNS)}"
                )
            for line, rec in enumerate(reader, start=2):
                try:
                    values = {k.lower(): _number(rec[k]) for k in REQUIRED_COLUMNS[1:]}
                    day = date.fromisoformat(rec["Date"].strip())
                except (ValueError, AttributeError) as e:
                    raise StorageError(f"{path}:{line}: bad value: {e}") from e
                if values["close"] is None:
                    skipped += 1
                    continue
                rows.append({"ticker": ticker, "day": day, **values})
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e}") from e
    return ticker, rows, skipped


def price_files(path: Path) -> list[Path]:
    """One CSV, or every ``*.csv`` in a folder (sorted, so loads are repeatable)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not files:
            raise StorageError(f"no *.csv price files in {path}")
        return files
    raise StorageError(f"price path {path} does not exist")


def load_prices(engine: Engine, path: Path) -> PriceLoad:
    """Upserts every price file under ``path``; one transaction per file."""
    result = PriceLoad()
    for file in price_files(path):
        ticker, rows, skipped = read_price_csv(file)
        result.files += 1
        result.skipped += skipped
        result.tickers.append(ticker)
        if not rows:
            continue
        try:
            with engine.begin() as conn:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                stmt = insert(PRICES)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["ticker", "day"],
                    set_={c: stmt.excluded[c] for c in ("open", "high", "low", "close", "volume")},
                )
                conn.execute(stmt, rows)
        except sa_exc.SQLAlchemyError as e:
            raise wrap_error(e, f"loading prices from {file}") from e
        result.rows += len(rows)
    return result
