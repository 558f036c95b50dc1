"""Evaluating every enabled rule against the store: window stats in, alerts and events out.

Time is DATA time. ``now`` defaults to the newest document's ``event_at`` (capped at the wall
clock, so one future-dated document cannot drag every window into the future). A replay of
2015 tweets therefore opens and resolves alerts exactly as it would have live, and a quiet
store does not resolve alerts merely because the clock moved on: an alert needs documents to
open and documents (or an emptied window) to resolve.

Concurrency: several workers call ``evaluate_rules`` after their batches. Each rule is decided
inside one transaction that first writes the rule's own row, which takes its lock (a row lock
on PostgreSQL, the write lock on SQLite), so evaluators of one rule run one after another and
the second sees the first one's open alert: one open alert per rule and ticker. An evaluation
older than the rule's last one (``now`` earlier than its ``evaluated_at``) is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.decision import SeriesState, WindowStats, decide
from alerts.events import AlertEvent, Notifier
from alerts.windows import evidence_ids, series_stats
from storage.db import wrap_error
from storage.queries import A, D, R, current_model_version, utcnow

log = logging.getLogger("alerts")


def evaluate_rules(
    engine: Engine,
    now: datetime | None = None,
    notifier: Notifier | None = None,
    *,
    model_version: str | None = None,
) -> list[AlertEvent]:
    """Evaluates all enabled rules once; returns (and notifies) the alerts opened or resolved.

    ``model_version`` defaults to the version of the newest score, what the workers write now.
    """
    events: list[AlertEvent] = []
    try:
        with engine.connect() as conn:
            rules = conn.execute(select(R).where(R.c.enabled.is_(True)).order_by(R.c.id)).all()
            if not rules:
                return []
            at = _naive_utc(now) if now is not None else evaluation_time(conn)
            if at is None:  # an empty store: nothing to judge, and no clock to move
                return []
            version = model_version or current_model_version(conn)
            data_start = _as_dt(conn.execute(select(func.min(D.c.event_at))).scalar())
            stats = {r.id: series_stats(conn, r, at, version, data_start) for r in rules}
        for rule in rules:
            events.extend(_apply_rule(engine, rule.id, stats[rule.id], at, version))
    except SQLAlchemyError as e:
        raise wrap_error(e, "evaluating alert rules") from e
    finally:
        if notifier is not None and events:
            notifier.notify(events)
    for ev in events:
        log.info("alert %s: rule %s on %s (value %s)", ev.event, ev.rule_name, ev.ticker, ev.value)
    return events


def evaluation_time(conn: Connection) -> datetime | None:
    """The newest document's event_at, capped at the wall clock; None for an empty store.

    Never the wall clock alone: a rule's last evaluation time only moves forward, so an
    evaluation stamped with today's date would make a replay of older data look stale.
    """
    newest = _as_dt(conn.execute(select(func.max(D.c.event_at))).scalar())
    return None if newest is None else min(newest, utcnow())


def _apply_rule(
    engine: Engine,
    rule_id: int,
    stats: Mapping[str, WindowStats],
    now: datetime,
    model_version: str | None,
) -> list[AlertEvent]:
    with engine.begin() as conn:
        # Step 1: lock the rule's row; a concurrent evaluator of this rule waits here.
        conn.execute(update(R).where(R.c.id == rule_id).values(enabled=R.c.enabled))
        # Step 2: read the rule, its remembered state and its open alerts under that lock.
        rule = conn.execute(select(R).where(R.c.id == rule_id)).first()
        if rule is None or not rule.enabled:
            return []
        evaluated_at, remembered = load_state(rule.state)
        if evaluated_at is not None and now < evaluated_at:
            log.debug("rule %s: evaluation at %s is older than %s", rule.name, now, evaluated_at)
            return []
        open_alerts = {
            a.ticker: a
            for a in conn.execute(select(A).where(A.c.rule_id == rule_id, A.c.status == "open"))
        }
        # Step 3: decide each series (every series with data, an open alert or a pending breach).
        keys = set(stats) | set(open_alerts)
        keys |= {k for k, s in remembered.items() if s.pending_since is not None}
        events: list[AlertEvent] = []
        states = dict(remembered)
        for key in sorted(keys):
            window = stats.get(key, WindowStats(0, None))
            prior = remembered.get(key, SeriesState())
            prior = SeriesState(key in open_alerts, prior.pending_since, prior.resolved_at)
            decision = decide(rule, window, prior, now)
            states[key] = decision.state
            event = _act(conn, rule, key, decision.action, window, open_alerts.get(key), now,
                         model_version)
            if event is not None:
                events.append(event)
        # Step 4: store the state (pending times, cooldowns) in the same transaction.
        conn.execute(
            update(R).where(R.c.id == rule_id).values(state=dump_state(now, states, rule))
        )
    return events


def _act(
    conn: Connection,
    rule: Any,
    key: str,
    action: str,
    window: WindowStats,
    open_alert: Any,
    now: datetime,
    model_version: str | None,
) -> AlertEvent | None:
    if action == "open":
        evidence = evidence_ids(conn, rule, key, now, model_version)
        result = conn.execute(
            A.insert().values(
                rule_id=rule.id,
                ticker=key,
                status="open",
                opened_at=now,
                value=window.value,
                last_value=window.value,
                evidence=evidence,
                notified=False,
            )
        )
        alert_id = int(result.inserted_primary_key[0])
        return _event("opened", rule, alert_id, key, window.value, now, now, None, model_version,
                      evidence)
    if action == "resolve" and open_alert is not None:
        last = window.value if window.value is not None else open_alert.last_value
        conn.execute(
            update(A)
            .where(A.c.id == open_alert.id)
            .values(status="resolved", resolved_at=now, last_value=last)
        )
        return _event("resolved", rule, open_alert.id, key, last, now,
                      _as_dt(open_alert.opened_at) or now, now, model_version,
                      list(open_alert.evidence or []))
    if action == "update" and open_alert is not None and window.value is not None:
        conn.execute(update(A).where(A.c.id == open_alert.id).values(last_value=window.value))
    return None


def _event(
    kind: Any,
    rule: Any,
    alert_id: int,
    key: str,
    value: float | None,
    at: datetime,
    opened_at: datetime,
    resolved_at: datetime | None,
    model_version: str | None,
    evidence: list[int],
) -> AlertEvent:
    return AlertEvent(
        event=kind,
        alert_id=alert_id,
        rule_id=rule.id,
        rule_name=rule.name,
        rule_kind=rule.kind,
        scope=rule.scope,
        ticker=key,
        value=value,
        threshold=rule.threshold,
        at=at,
        opened_at=opened_at,
        resolved_at=resolved_at,
        model_version=model_version,
        evidence=evidence,
    )


def load_state(raw: Any) -> tuple[datetime | None, dict[str, SeriesState]]:
    """The rule's JSON state -> (last evaluation time, per-series memory)."""
    if not isinstance(raw, dict):
        return None, {}
    series: dict[str, SeriesState] = {}
    for key, item in (raw.get("series") or {}).items():
        if isinstance(item, dict):
            series[key] = SeriesState(
                pending_since=_parse(item.get("pending_since")),
                resolved_at=_parse(item.get("resolved_at")),
            )
    return _parse(raw.get("evaluated_at")), series


def dump_state(now: datetime, series: Mapping[str, SeriesState], rule: Any) -> dict[str, Any]:
    """Keeps only what matters later: pending breaches and cooldowns still running."""
    cooldown = timedelta(seconds=rule.cooldown_s or 0)
    kept: dict[str, dict[str, str | None]] = {}
    for key, s in series.items():
        cooling = s.resolved_at is not None and s.resolved_at + cooldown > now
        if s.pending_since is None and not cooling:
            continue
        kept[key] = {
            "pending_since": _iso(s.pending_since),
            "resolved_at": _iso(s.resolved_at) if cooling else None,
        }
    return {"evaluated_at": _iso(now), "series": kept}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _as_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
