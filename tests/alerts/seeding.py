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
