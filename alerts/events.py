"""What an evaluation reports: one event per alert opened or resolved, and who hears of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class AlertEvent:
    """An alert that this evaluation opened or resolved (never one it merely updated)."""

    event: Literal["opened", "resolved"]
    alert_id: int
    rule_id: int
    rule_name: str
    rule_kind: str
    scope: str
    ticker: str  # ticker, source kind, or '*' for market-wide
    value: float | None
    threshold: float
    at: datetime
    opened_at: datetime
    resolved_at: datetime | None = None
    model_version: str | None = None
    evidence: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The webhook payload: ISO times with an explicit UTC offset."""
        out = asdict(self)
        for key in ("at", "opened_at", "resolved_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat() + "Z"
        return out


class Notifier(Protocol):
    """Receives events after their transaction committed; must return at once."""

    def notify(self, events: Sequence[AlertEvent]) -> None: ...
