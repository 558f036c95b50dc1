"""Small builders for storage tests: scored documents with sensible defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.writes import DeadLetterIn, DocumentIn, MentionIn, ScoredDocument, ScoreIn

T0 = datetime(2024, 3, 1, 10, 0, 0)

_LABEL_PROBS = {
    "negative": (0.8, 0.15, 0.05),
    "neutral": (0.1, 0.8, 0.1),
    "positive": (0.05, 0.15, 0.8),
}


def score(
    label: str = "positive", model_version: str = "m1", value: float | None = None
) -> ScoreIn:
    p_neg, p_neu, p_pos = _LABEL_PROBS.get(label, _LABEL_PROBS["neutral"])
    return ScoreIn(
        model_version=model_version,
        label=label,
        p_negative=p_neg,
        p_neutral=p_neu,
        p_positive=p_pos,
        score=p_pos - p_neg if value is None else value,
    )


def item(
    external_id: str,
    *,
    source: str = "test",
    kind: str = "news",
    event_at: datetime = T0,
    tickers: tuple[str, ...] = ("AAPL",),
    label: str = "positive",
    model_version: str = "m1",
    value: float | None = None,
    **doc: Any,
) -> ScoredDocument:
    fields: dict[str, Any] = {
        "text": f"text of {external_id}",
        "title": None,
        "url": None,
        "author": None,
        "lang": "en",
        "published_at": event_at,
        "extra": None,
    }
    fields.update(doc)
    return ScoredDocument(
        document=DocumentIn(
            source=source, external_id=external_id, kind=kind, event_at=event_at, **fields
        ),
        score=score(label, model_version, value),
        mentions=[MentionIn(ticker=t, how="cashtag") for t in tickers],
    )


def dead_letter(
    offset: int, *, topic: str = "finsent.news", reason: str = "bad json"
) -> DeadLetterIn:
    return DeadLetterIn(
        topic=topic, partition=0, offset=offset, key=b"k", raw=b"\xff{not json", reason=reason
    )
