"""Classification metrics in one JSON-ready dict, so `finsent eval`, training and the card agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scorer.data import LABELS


def metrics(gold: Sequence[int], pred: Sequence[int]) -> dict[str, object]:
    """n, accuracy, macro-F1, per-class F1, confusion matrix (rows gold, columns predicted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(len(LABELS)))
    if not gold:
        return {"n": 0, "accuracy": None, "macro_f1": None, "f1": {}, "confusion_matrix": [],
                "labels": list(LABELS)}
    per_class = f1_score(gold, pred, labels=labels, average=None, zero_division=0)
    return {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, pred)), 4),
        "macro_f1": round(float(f1_score(gold, pred, labels=labels, average="macro",
                                         zero_division=0)), 4),
        "f1": {name: round(float(f), 4) for name, f in zip(LABELS, per_class, strict=True)},
        "confusion_matrix": confusion_matrix(gold, pred, labels=labels).tolist(),
        "labels": list(LABELS),
    }


def predict_sentiments(backend: object, texts: Sequence[str], batch_size: int = 64) -> list[Any]:
    """A ``scorer.backends.Backend``'s sentiments in input order, batched by length (less
    padding); deterministic, so two backends compared on the same texts see the same batches."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[Any] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        for i, s in zip(idx, backend.predict([texts[i] for i in idx]), strict=True):  # type: ignore[attr-defined]
            out[i] = s
    return out


def predict_ids(backend: object, texts: Sequence[str], batch_size: int = 64) -> list[int]:
    """Label ids predicted by a ``scorer.backends.Backend`` (see ``predict_sentiments``)."""
    from scorer.data import LABEL2ID

    return [LABEL2ID[s.label] for s in predict_sentiments(backend, texts, batch_size)]
