"""Perturbed copies of training sentences: an unlabelled transfer set for distillation.

A small student learns a teacher's function best from many inputs near the training data
(TinyBERT's data augmentation); PhraseBank has only ~3,500 training sentences. A perturbed
sentence may no longer carry its original label, which is why these rows are UNLABELLED:
the teacher's soft target on the perturbed text is what the student learns, never the
original label. Word-level edits only (no second model): dropout, a deleted span, a cropped
window, an adjacent swap.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def _dropout(words: list[str], rng: random.Random, p: float) -> list[str]:
    kept = [w for w in words if rng.random() >= p]
    return kept or words[:1]


def _delete_span(words: list[str], rng: random.Random) -> list[str]:
    n = len(words)
    span = max(1, int(n * rng.uniform(0.1, 0.25)))
    start = rng.randrange(0, n - span + 1)
    return words[:start] + words[start + span:]


def _crop(words: list[str], rng: random.Random) -> list[str]:
    n = len(words)
    keep = max(3, int(n * rng.uniform(0.6, 0.9)))
    start = rng.randrange(0, n - keep + 1)
    return words[start:start + keep]


def _swap(words: list[str], rng: random.Random) -> list[str]:
    out = list(words)
    i = rng.randrange(0, len(out) - 1)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


_EDITS = (_delete_span, _crop, _swap)


def perturb(text: str, rng: random.Random, dropout: float = 0.1) -> str:
    """One perturbed copy: one structural edit, then word dropout. Short texts (< 4 words)
    get dropout only, since a span or a crop would leave almost nothing."""
    words = text.split()
    if len(words) >= 4:
        words = rng.choice(_EDITS)(words, rng)
    return " ".join(_dropout(words, rng, dropout))


def augment(texts: Sequence[str], copies: int, seed: int, dropout: float = 0.1) -> list[str]:
    """Up to ``copies`` distinct perturbed copies of each text, deterministic for a seed.

    Copies equal to any original text or to an earlier copy are dropped (an original keeps
    its real label; a duplicate would weigh twice)."""
    if copies < 0:
        raise ValueError(f"copies must not be negative, got {copies}")
    rng = random.Random(seed)
    seen = set(texts)
    out: list[str] = []
    for text in texts:
        for _ in range(copies):
            new = perturb(text, rng, dropout)
            if new and new not in seen:
                seen.add(new)
                out.append(new)
    return out
