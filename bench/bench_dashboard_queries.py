"""Dashboard and alert queries on a SQLite store holding one million scores.

Seeds a fresh SQLite file through the real migrations, then bulk-inserts (raw sqlite3
executemany, in event_at order like a live stream) N documents with one score each and one
or two ticker mentions, over 90 days of data time ending 2016-03-31, tickers drawn with a
Zipf-like popularity; loads StockNet daily prices when the data folder is there. The bulk
rows bypass save_batch, which keeps the hourly rollups, so they go in at revision 0003 and
the last migration (0004) backfills the rollups from them, as it would on an existing
store; its time is reported as ``rollup_backfill_seconds``. Then times
each dashboard page's queries (storage.queries, uncached, as a cache miss costs) for the time
ranges the page offers, and one alert evaluation of the default rules (what a worker runs
after each batch). Median of warm runs, and the first (cold) run, in milliseconds.

    nice python bench/bench_dashboard_queries.py [--docs 1000000] [--db PATH] [--keep]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from common import DATA, machine, write_result

from alerts.defaults import install_default_rules
from alerts.engine import evaluate_rules
from storage import queries
from storage.db import make_engine, upgrade
from storage.prices import load_prices
from storage.sqlrunner import run_readonly

END = datetime(2016, 3, 31, 20, 0, 0)
DAYS = 90
MODEL = "finsent-minilm-bench"
RANGES = {
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all (90d)": None,
}
RUNS = 5


def tickers() -> list[str]:
    prices = DATA / "stocknet" / "price_raw"
    if prices.is_dir():
        return sorted(p.stem for p in prices.glob("*.csv"))
    return [f"T{i:03d}" for i in range(87)]


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(path: Path, n_docs: int, symbols: list[str]) -> dict[str, Any]:
    """Bulk rows straight into the migrated file (the write path is benchmarked elsewhere)."""
    rng = random.Random(42)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(symbols))]
    start = END - timedelta(days=DAYS)
    step = (END - start) / n_docs
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    t0 = time.perf_counter()
    chunk = 50_000
    n_mentions = 0
    for lo in range(0, n_docs, chunk):
        docs, scores, mentions = [], [], []
        for i in range(lo, min(lo + chunk, n_docs)):
            at = start + step * (i + rng.random())
            ts = _ts(at)
            kind = "news" if rng.random() < 0.3 else "comment"
            score = max(-1.0, min(1.0, rng.gauss(0.05, 0.4)))
            p_neg, p_pos = max(0.0, -score), max(0.0, score)
            label = "negative" if score <= -0.2 else "positive" if score >= 0.2 else "neutral"
            doc_id = i + 1
            docs.append(
                (
                    doc_id,
                    "reuters" if kind == "news" else "stocktwits",
                    f"b{i}",
                    kind,
                    f"bench document {i} about the market",
                    ts,
                    ts,
                    ts,
                )
            )
            scores.append(
                (doc_id, doc_id, MODEL, label, p_neg, 1 - p_neg - p_pos, p_pos, score, ts)
            )
            for t in set(rng.choices(symbols, weights, k=1 if rng.random() < 0.8 else 2)):
                mentions.append((doc_id, t, ts, "cashtag"))
        conn.executemany(
            "INSERT INTO documents (id, source, external_id, kind, text, published_at, "
            "event_at, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            docs,
        )
        conn.executemany(
            "INSERT INTO scores (id, document_id, model_version, label, p_negative, p_neutral, "
            "p_positive, score, scored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            scores,
        )
        conn.executemany(
            "INSERT INTO mentions (document_id, ticker, event_at, how) VALUES (?, ?, ?, ?)",
            mentions,
        )
        conn.commit()
        n_mentions += len(mentions)
    conn.close()
    return {
        "documents": n_docs,
        "scores": n_docs,
        "mentions": n_mentions,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def timed(fn: Callable[[], Any]) -> dict[str, float]:
    first = time.perf_counter()
    fn()
    cold = time.perf_counter() - first
    runs = []
    for _ in range(RUNS):
        s = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - s)
    return {"cold_ms": round(cold * 1000, 1), "median_ms": round(statistics.median(runs) * 1000, 1)}


def page(queries_of_page: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    per = {name: timed(fn) for name, fn in queries_of_page.items()}
    return {
        "queries": per,
        "total_median_ms": round(sum(q["median_ms"] for q in per.values()), 1),
        "total_cold_ms": round(sum(q["cold_ms"] for q in per.values()), 1),
    }


def range_pages(
    engine: Any, start: datetime, end: datetime, mv: str | None, ticker: str
) -> dict[str, Any]:
    """The market and ticker pages for one time range, as the pages call them."""
    bucket = queries.pick_bucket(start, end)
    return {
        "bucket": bucket,
        "market": page(
            {
                "data_span": lambda: queries.data_span(engine),
                "current_model_version": lambda: queries.current_model_version(engine),
                "market_by_kind (index + volume, one scan)": lambda: queries.index_from_kinds(
                    queries.market_by_kind(engine, start, end, model_version=mv, bucket=bucket)
                ),
                "top_movers": lambda: queries.top_movers(engine, start, end, model_version=mv),
                "open_alerts": lambda: queries.list_alerts(engine, status="open"),
            }
        ),
        "ticker": page(
            {
                "ticker_activity": lambda: queries.ticker_activity(engine, start, end),
                "ticker_timeline": lambda: queries.ticker_timeline(
                    engine, ticker, start, end, model_version=mv, bucket=bucket
                ),
                "price_series": lambda: queries.price_series(
                    engine, ticker, start.date(), end.date()
                ),
                "latest_documents": lambda: queries.latest_documents(
                    engine, start, end, model_version=mv, ticker=ticker
                ),
                "most_negative_documents": lambda: queries.latest_documents(
                    engine, start, end, model_version=mv, ticker=ticker, most_negative=True
                ),
            }
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the database file")
    ap.add_argument("--reuse", action="store_true",
                    help="time an existing --db file as is (no seeding)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="finsent-bench-"))
    path = args.db or folder / "bench.db"
    url = f"sqlite:///{path}"
    symbols = tickers()
    engine = make_engine(url)
    price_rows = 0
    eval_times = []
    if args.reuse and args.db is not None and path.exists():
        seeding: dict[str, Any] = {"reused": str(path)}
    else:
        upgrade(url, "0003")
        seeding = seed(path, args.docs, symbols)
        s = time.perf_counter()
        upgrade(url)
        seeding["rollup_backfill_seconds"] = round(time.perf_counter() - s, 1)
        if (DATA / "stocknet" / "price_raw").is_dir():
            price_rows = load_prices(engine, DATA / "stocknet" / "price_raw").rows
        install_default_rules(engine)
        # A day of hourly evaluations leaves alerts and rule state behind, as in production.
        for h in range(24, 0, -1):
            s = time.perf_counter()
            evaluate_rules(engine, now=END - timedelta(hours=h))
            eval_times.append(time.perf_counter() - s)

    oldest, newest = queries.data_span(engine)
    assert oldest is not None and newest is not None
    mv = queries.current_model_version(engine)
    busiest = queries.ticker_activity(engine, newest - timedelta(days=1), newest, limit=1)[0]
    evidence = next((a["evidence"] for a in queries.list_alerts(engine) if a["evidence"]), [])

    results: dict[str, Any] = {}
    for label, length in RANGES.items():
        start = oldest - timedelta(seconds=1) if length is None else newest - length
        results[label] = range_pages(engine, start, newest, mv, busiest["ticker"])
    fixed = {
        "live_feed": page({"live_feed": lambda: queries.live_feed(engine, limit=50)}),
        "alerts": page(
            {
                "open": lambda: queries.list_alerts(engine, status="open"),
                "resolved": lambda: queries.list_alerts(engine, status="resolved", limit=100),
                "evidence_documents": lambda: queries.documents_by_ids(engine, evidence),
                "newest_alert_id": lambda: queries.newest_alert_id(engine),
            }
        ),
        "rules": page({"list_rules": lambda: queries.list_rules(engine)}),
        "sql": page(
            {
                "schema_listing": lambda: queries.schema_listing(engine),
                "example_hourly_view_one_ticker": lambda: run_readonly(
                    url,
                    "SELECT bucket, n, mean_score FROM ticker_sentiment_hour "
                    f"WHERE ticker = '{busiest['ticker']}' ORDER BY bucket DESC LIMIT 48",
                    timeout_s=30,
                    max_rows=1000,
                ),
            }
        ),
        "alert_evaluation_default_rules": {
            "hourly_replay_median_ms": (
                round(statistics.median(eval_times) * 1000, 1) if eval_times else None
            ),
            "after_batch": timed(lambda: evaluate_rules(engine, now=END)),
        },
    }
    engine.dispose()
    size_mb = round(path.stat().st_size / 1e6, 1)
    result = {
        "benchmark": "dashboard_queries",
        "machine": {**machine(), "sqlite": sqlite3.sqlite_version},
        "store": {
            **seeding,
            "prices": price_rows,
            "tickers": len(symbols),
            "days": DAYS,
            "file_mb": size_mb,
            "busiest_ticker_24h": busiest,
        },
        "ranges": results,
        "fixed_pages": fixed,
        "note": "storage.queries uncached (a dashboard cache miss); medians of "
        f"{RUNS} warm runs plus the first run; SQLite file without ANALYZE.",
    }
    write_result("dashboard_queries", result)
    if not args.keep and args.db is None:
        path.unlink()
        for extra in folder.glob("*"):
            extra.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
