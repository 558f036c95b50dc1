"""The alert state machine as pure functions: (rule, window stats, prior state, now) -> decision.

No database and no Streamlit here, so every anti-fatigue behaviour is unit-tested directly:

- breach: ``value`` past ``threshold`` with at least ``min_count`` documents in the window;
- ``for_s``: the breach must hold that long (``pending_since`` kept in the rule's state);
- hysteresis: an open alert resolves only when the value is back past ``resolve_threshold``
  (or when its window holds no document at all: nothing supports the alert any more);
  while the window is too thin to judge (``value`` None) an open alert is held as is;
- ``cooldown_s``: after a resolve, the same rule and ticker may not open again that long;
- one open alert per rule and ticker: an open series can only be updated or resolved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from alerts.rules import RISING_KINDS

Action = Literal["none", "pending", "open", "update", "resolve"]


class RuleLike(Protocol):
    kind: str
    threshold: float
    resolve_threshold: float | None
    min_count: int
    for_s: int
    cooldown_s: int


@dataclass(frozen=True)
class WindowStats:
    """One series' window: ``value`` is None when there is too little data to judge."""

    count: int
    value: float | None


@dataclass(frozen=True)
class SeriesState:
    """What the decision remembers between evaluations for one rule and ticker."""

    open: bool = False
    pending_since: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    state: SeriesState
    reason: str


def breaches(kind: str, value: float, threshold: float) -> bool:
    """Strictly past the threshold: a value exactly at it does not fire."""
    return value > threshold if kind in RISING_KINDS else value < threshold


def recovered(kind: str, value: float, resolve_threshold: float) -> bool:
    """Back at or inside the resolve threshold."""
    return value <= resolve_threshold if kind in RISING_KINDS else value >= resolve_threshold


def decide(rule: RuleLike, stats: WindowStats, prior: SeriesState, now: datetime) -> Decision:
    """The next step of one series; the caller persists ``state`` and acts on ``action``."""
    if prior.open:
        return _decide_open(rule, stats, prior, now)
    return _decide_closed(rule, stats, prior, now)


def _decide_open(
    rule: RuleLike, stats: WindowStats, prior: SeriesState, now: datetime
) -> Decision:
    resolve_at = rule.threshold if rule.resolve_threshold is None else rule.resolve_threshold
    if stats.count == 0:
        return Decision("resolve", SeriesState(resolved_at=now), "window is empty")
    if stats.value is None:
        return Decision("update", prior, f"too few documents to judge ({stats.count})")
    if recovered(rule.kind, stats.value, resolve_at):
        back = f"value {stats.value:.3f} back past {resolve_at}"
        return Decision("resolve", SeriesState(resolved_at=now), back)
    return Decision("update", prior, f"value {stats.value:.3f} still past {resolve_at}")


def _decide_closed(
    rule: RuleLike, stats: WindowStats, prior: SeriesState, now: datetime
) -> Decision:
    calm = replace(prior, pending_since=None)
    if stats.value is None or stats.count < rule.min_count:
        return Decision("none", calm, f"too few documents ({stats.count} < {rule.min_count})")
    if not breaches(rule.kind, stats.value, rule.threshold):
        return Decision("none", calm, f"value {stats.value:.3f} within {rule.threshold}")
    since = prior.pending_since if prior.pending_since is not None else now
    pending = replace(prior, pending_since=since)
    held_s = (now - since).total_seconds()
    if held_s < rule.for_s:
        return Decision("pending", pending, f"breach held {held_s:.0f}s of {rule.for_s}s")
    if prior.resolved_at is not None:
        until = prior.resolved_at + timedelta(seconds=rule.cooldown_s)
        if now < until:
            return Decision("pending", pending, f"cooling down until {until.isoformat()}")
    fired = f"value {stats.value:.3f} past {rule.threshold}"
    return Decision("open", SeriesState(open=True), fired)


def volume_z(current: int, baseline: Sequence[int]) -> float | None:
    """z-score of this window's count against the previous windows' counts.

    The standard deviation is floored at 1 document so a flat (or empty) baseline gives a
    finite z: a jump from a steady 3 per hour to 9 scores z=6, not infinity.
    """
    if not baseline:
        return None
    mean = sum(baseline) / len(baseline)
    var = sum((c - mean) ** 2 for c in baseline) / len(baseline)
    return (current - mean) / max(math.sqrt(var), 1.0)


def window_bounds(now: datetime, window_s: int) -> tuple[datetime, datetime]:
    """(start, end) of the window ending at ``now``: start excluded, end included.

    Half-open so that consecutive windows tile time without counting a document twice.
    """
    return now - timedelta(seconds=window_s), now


def in_window(event_at: datetime, now: datetime, window_s: int) -> bool:
    start, end = window_bounds(now, window_s)
    return start < event_at <= end
