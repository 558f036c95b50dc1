"""What a valid alert rule is, and the few ways to store one (CLI and dashboard share them).

Validation lives here, not in ``storage``, so both entry points give the same one-line
messages; ``storage.queries`` only reads and writes rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from alerts.exceptions import RuleInvalid, RuleNotFound
from storage import queries

RuleKind = Literal["mean_below", "mean_above", "neg_share_above", "volume_z"]
RuleScope = Literal["ticker", "kind", "market"]
KINDS: tuple[str, ...] = ("mean_below", "mean_above", "neg_share_above", "volume_z")
SCOPES: tuple[str, ...] = ("ticker", "kind", "market")
DOC_KINDS: tuple[str, ...] = ("news", "comment")

# Kinds that fire when the value goes UP (resolve threshold must sit at or below the threshold).
RISING_KINDS = frozenset({"mean_above", "neg_share_above", "volume_z"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")


def parse_duration(text: str | int | float) -> int:
    """'90', '90s', '5m', '1h', '2d' -> seconds; users think in minutes, the table in seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text)
    match = _DURATION.match(str(text))
    if not match:
        raise RuleInvalid(f"bad duration {text!r}: use seconds or a number with s, m, h or d")
    return int(float(match.group(1)) * _UNIT_S[match.group(2).lower()])


class RuleSpec(BaseModel):
    """A validated rule; field meanings are those of ``storage.models.AlertRule``.

    ``resolve_threshold`` None means "same as threshold" (no hysteresis).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: RuleKind
    scope: RuleScope = "ticker"
    target: str | None = None
    threshold: float
    resolve_threshold: float | None = None
    window_s: int = Field(3600, ge=60, le=30 * 86400)
    min_count: int = Field(5, ge=1)
    for_s: int = Field(0, ge=0)
    cooldown_s: int = Field(0, ge=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        self._check_target()
        self._check_thresholds()
        return self

    def _check_target(self) -> None:
        if self.scope == "market" and self.target is not None:
            raise ValueError("a market rule takes no target (it watches all documents)")
        if self.scope == "kind" and self.target is not None and self.target not in DOC_KINDS:
            raise ValueError(f"target of a kind rule must be one of {', '.join(DOC_KINDS)}")
        if self.scope == "ticker" and self.target is not None and not _TICKER.match(self.target):
            raise ValueError(
                f"target {self.target!r} is not a ticker symbol (upper case, e.g. AAPL)"
            )

    def _check_thresholds(self) -> None:
        t, r = self.threshold, self.resolve_threshold
        if self.kind in ("mean_below", "mean_above"):
            for label, v in (("threshold", t), ("resolve_threshold", r)):
                if v is not None and not -1.0 <= v <= 1.0:
                    raise ValueError(f"{label} {v} is outside the score range [-1, 1]")
        elif self.kind == "neg_share_above":
            for label, v in (("threshold", t), ("resolve_threshold", r)):
                if v is not None and not 0.0 <= v <= 1.0:
                    raise ValueError(f"{label} {v} is not a share in [0, 1]")
        elif t <= 0:
            raise ValueError(f"threshold {t} of volume_z must be a positive z-score (e.g. 3)")
        if r is None:
            return
        if self.kind in RISING_KINDS and r > t:
            raise ValueError(
                f"resolve_threshold {r} must be <= threshold {t} for {self.kind} "
                "(the alert resolves when the value falls back below it)"
            )
        if self.kind == "mean_below" and r < t:
            raise ValueError(
                f"resolve_threshold {r} must be >= threshold {t} for mean_below "
                "(the alert resolves when the mean climbs back above it)"
            )

    @property
    def effective_resolve(self) -> float:
        return self.threshold if self.resolve_threshold is None else self.resolve_threshold

    def describe(self) -> str:
        """One line a person reads in a list: what fires, over which window, how it calms."""
        who = self.target or {"ticker": "each ticker", "kind": "each kind", "market": "market"}[
            self.scope
        ]
        op = {"mean_below": "mean <", "mean_above": "mean >", "neg_share_above": "neg share >",
              "volume_z": "volume z >"}[self.kind]
        return (
            f"{who}: {op} {self.threshold:g} over {_fmt_s(self.window_s)} "
            f"(n >= {self.min_count}, for {_fmt_s(self.for_s)}, resolve at "
            f"{self.effective_resolve:g}, cooldown {_fmt_s(self.cooldown_s)})"
        )


def _fmt_s(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def validate_rule(**fields: Any) -> RuleSpec:
    """Builds a RuleSpec or raises RuleInvalid with ONE line naming the problem."""
    fields = {k: v for k, v in fields.items() if v is not None or k in ("target",)}
    if isinstance(fields.get("target"), str):
        target = fields["target"].strip()
        fields["target"] = (target.upper() if fields.get("scope", "ticker") == "ticker"
                            else target.lower()) or None
    for key in ("window_s", "for_s", "cooldown_s"):
        if key in fields and isinstance(fields[key], str):
            fields[key] = parse_duration(fields[key])
    try:
        return RuleSpec(**fields)
    except ValidationError as e:
        raise RuleInvalid(_one_line(fields.get("name"), e)) from e


def _one_line(name: object, error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    where = f"rule {name!r}" if name else "rule"
    return f"{where}: {loc + ': ' if loc else ''}{msg}"


def spec_from_row(row: Any) -> RuleSpec:
    """A stored rule (a Row or a dict) as a RuleSpec, unvalidated: rows written by hand with
    bad values still display."""
    data = row if isinstance(row, Mapping) else row._mapping
    return RuleSpec.model_construct(**{k: data[k] for k in RuleSpec.model_fields if k in data})


def add_rule(engine: Engine, spec: RuleSpec) -> int:
    """Stores a new rule; a taken name is a RuleInvalid, not a database traceback."""
    if queries.get_rule(engine, spec.name) is not None:
        raise RuleInvalid(f"rule {spec.name!r} already exists; pick another name or edit it")
    try:
        return queries.create_rule(engine, spec.model_dump())
    except IntegrityError as e:
        raise RuleInvalid(f"rule {spec.name!r} already exists; pick another name") from e


def update_rule(engine: Engine, ref: int | str, spec: RuleSpec) -> None:
    """Replaces a rule's definition; its runtime state restarts (old pending times are moot)."""
    row = require_rule(engine, ref)
    other = queries.get_rule(engine, spec.name)
    if other is not None and other.id != row.id:
        raise RuleInvalid(f"rule {spec.name!r} already exists; pick another name")
    queries.update_rule(engine, row.id, {**spec.model_dump(), "state": None})


def set_rule_enabled(engine: Engine, ref: int | str, enabled: bool) -> int:
    """Enables or disables a rule; disabling resolves its open alerts (nobody watches them
    any more) and returns how many it closed."""
    row = require_rule(engine, ref)
    queries.update_rule(engine, row.id, {"enabled": enabled, "state": None})
    return 0 if enabled else queries.resolve_open_alerts(engine, row.id)


def require_rule(engine: Engine, ref: int | str) -> Any:
    row = queries.get_rule(engine, ref)
    if row is None:
        raise RuleNotFound(f"no rule named {ref!r}; `finsent rules list` shows them")
    return row
