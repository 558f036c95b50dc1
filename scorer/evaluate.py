"""Classification metrics in one JSON-ready dict, so `finsent eval`, training and the card agree."""

from __future__ import annotations

from collections.abc import Sequence

from scorer.data import LABELS


def metrics(gold: Sequence[int], pred: Sequence[int]) -> dict[str, object]:
    """n, accuracy, macro-F1, per-class F1 and the confusion matrix (rows gold, columns predicted)."""
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
