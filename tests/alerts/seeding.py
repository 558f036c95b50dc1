"""Test data through the real write path (storage.writes.save_batch), shared by the alerts
and dashboard tests: documents with chosen times, scores and tickers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from storage.writes import DocumentIn, MentionIn, ScoredDocument, ScoreIn, save_batch

MODEL = "test-model-v1"


def label_of(score: float) -> str:
    if score <= -0.2:
        return "negative"
    if score >= 0.2:
        return "positive"
    return "neutral"


def scored(
    ext_id: str,
    at: datetime,
    score: float,
    *,
    tickers: Sequence[str] = ("AAPL",),
    kind: str = "comment",
    source: str = "test",
    model_version: str = MODEL,
    text: str | None = None,
) -> ScoredDocument:
    """A document whose probabilities add up and whose score is p_positive - p_negative."""
    p_neg, p_pos = max(0.0, -score), max(0.0, score)
    return ScoredDocument(
        document=DocumentIn(
            source=source,
            external_id=ext_id,
            kind=kind,
            text=text or f"{' '.join(tickers)} post {ext_id} scoring {score:+.2f}",
            title=None,
            url=None,
            author=None,
            lang="en",
            published_at=at,
            event_at=at,
            extra=None,
        ),
        score=ScoreIn(
            model_version=model_version,
            label=label_of(score),
            p_negative=p_neg,
            p_neutral=1.0 - p_neg - p_pos,
            p_positive=p_pos,
            score=score,
        ),
        mentions=[MentionIn(ticker=t, how="explicit") for t in tickers],
    )


def seed(engine: Engine, items: Iterable[ScoredDocument], batch: int = 500) -> int:
    items = list(items)
    for i in range(0, len(items), batch):
        save_batch(engine, items[i : i + batch])
    return len(items)


SCENARIO_END = datetime(2015, 6, 5, 16, 0, 0)
SCENARIO_TICKERS = ("AAPL", "MSFT", "TSLA", "XOM", "GS")


def market_scenario(hours: int = 72) -> list[ScoredDocument]:
    """Several tickers over a few days of data time; TSLA turns sharply negative in the last
    three hours (the story an alert and the dashboard should tell). Deterministic."""
    import random
    from datetime import timedelta

    rng = random.Random(7)
    items: list[ScoredDocument] = []
    for h in range(hours, 0, -1):
        hour_start = SCENARIO_END - timedelta(hours=h)
        for ticker in SCENARIO_TICKERS:
            burst = ticker == "TSLA" and h <= 3  # sell-off: more posts, all negative
            for j in range(rng.randint(11, 14) if burst else rng.randint(2, 4)):
                at = hour_start + timedelta(minutes=rng.randint(1, 59), seconds=j)
                if burst:
                    score = rng.uniform(-0.95, -0.45)
                else:
                    score = max(-1.0, min(1.0, rng.gauss(0.1, 0.35)))
                kind = "news" if (h + j) % 3 == 0 else "comment"
                ext = f"{ticker}-{h}-{j}"
                items.append(
                    scored(ext, at, round(score, 3), tickers=(ticker,), kind=kind,
                           source="reuters" if kind == "news" else "stocktwits",
                           text=f"{ticker} {'headline' if kind == 'news' else 'post'} {ext}")
                )
    return items


def price_csv(ticker: str, days: int = 10) -> str:
    """A small daily OHLCV file (StockNet's price_raw format) ending at the scenario's day."""
    from datetime import timedelta

    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for d in range(days, -1, -1):
        day = (SCENARIO_END - timedelta(days=d)).date()
        close = 200.0 + d
        lines.append(f"{day},{close},{close + 1},{close - 1},{close},{close},{1000 + d}")
    return "\n".join(lines) + "\n"
