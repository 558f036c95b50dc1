"""Window statistics of a rule, read from the store: the only DB reads the decision needs.

A rule's series are keyed by ticker (scope ``ticker``), source kind (``kind``) or ``'*'``
(``market``). Windows are ``(now - window_s, now]`` over documents' ``event_at``. Each query
starts from an ``event_at`` index and joins the scores of one model version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from alerts.decision import WindowStats, volume_z, window_bounds
from storage.queries import D, M, S

MARKET_KEY = "*"
# volume_z compares the last window with up to this many previous windows of the same length,
VOLUME_BASELINE_WINDOWS = 24
# and judges nothing until this many of them lie after the store's first document: a replay's
# first hours have no history, and a spike against an unobserved past means nothing.
MIN_BASELINE_WINDOWS = 6
EVIDENCE_LIMIT = 10


@dataclass(frozen=True)
class Source:
    """Where a rule's documents come from: the FROM clause, series key, time column, filter."""

    from_: Any
    key: Any | None  # None = one market-wide series
    time: Any
    where: list[Any]


def rule_source(rule: Any, model_version: str | None, *, scored: bool = True) -> Source:
    join_s = and_(S.c.document_id == D.c.id, S.c.model_version == model_version)
    base = D.join(S, join_s) if scored else D
    if rule.scope == "ticker":
        from_ = base.join(M, M.c.document_id == D.c.id)
        if rule.target:  # one ticker: the mentions(ticker, event_at) index
            return Source(from_, M.c.ticker, M.c.event_at, [M.c.ticker == rule.target])
        return Source(from_, M.c.ticker, D.c.event_at, [])
    if rule.scope == "kind":
        where = [D.c.kind == rule.target] if rule.target else []
        return Source(base, D.c.kind, D.c.event_at, where)
    return Source(base, None, D.c.event_at, [])


def series_stats(
    conn: Connection,
    rule: Any,
    now: datetime,
    model_version: str | None,
    data_start: datetime | None,
) -> dict[str, WindowStats]:
    """Stats per series key for series that have documents in the window (or its baseline)."""
    if rule.kind == "volume_z":
        return _volume_stats(conn, rule, now, data_start)
    return _score_stats(conn, rule, now, model_version)


def _score_stats(
    conn: Connection, rule: Any, now: datetime, model_version: str | None
) -> dict[str, WindowStats]:
    src = rule_source(rule, model_version)
    start, end = window_bounds(now, rule.window_s)
    n = func.count().label("n")
    mean = func.avg(S.c.score).label("mean")
    neg = func.sum(case((S.c.label == "negative", 1), else_=0)).label("neg")
    cols = [n, mean, neg] if src.key is None else [src.key.label("key"), n, mean, neg]
    stmt = select(*cols).select_from(src.from_).where(
        src.time > start, src.time <= end, *src.where
    )
    if src.key is not None:
        stmt = stmt.group_by(src.key)
    out: dict[str, WindowStats] = {}
    for row in conn.execute(stmt).mappings():
        count = int(row["n"] or 0)
        if count == 0:
            continue
        key = row["key"] if src.key is not None else MARKET_KEY
        if rule.kind == "neg_share_above":
            value: float | None = float(row["neg"]) / count
        else:
            value = float(row["mean"])
        out[key] = WindowStats(count, value if count >= rule.min_count else None)
    return out


def _volume_stats(
    conn: Connection, rule: Any, now: datetime, data_start: datetime | None
) -> dict[str, WindowStats]:
    w = timedelta(seconds=rule.window_s)
    usable = _baseline_windows(now, w, data_start)
    src = rule_source(rule, None, scored=False)
    span_start = now - w * (VOLUME_BASELINE_WINDOWS + 1)
    # Window k covers (now - (k+1)w, now - k w]; k = 0 is the current one.
    which = case(
        *[(src.time > now - w * (k + 1), k) for k in range(VOLUME_BASELINE_WINDOWS + 1)],
        else_=VOLUME_BASELINE_WINDOWS,
    )
    cols = [which.label("k")] if src.key is None else [src.key.label("key"), which.label("k")]
    inner = (
        select(*cols)
        .select_from(src.from_)
        .where(src.time > span_start, src.time <= now, *src.where)
        .subquery()
    )
    groups = [inner.c.k] if src.key is None else [inner.c.key, inner.c.k]
    stmt = select(*groups, func.count().label("n")).group_by(*groups)
    counts: dict[str, list[int]] = {}
    for row in conn.execute(stmt).mappings():
        series = MARKET_KEY if src.key is None else row["key"]
        per = counts.setdefault(series, [0] * (VOLUME_BASELINE_WINDOWS + 1))
        per[int(row["k"])] = int(row["n"])
    out: dict[str, WindowStats] = {}
    for series, per_window in counts.items():
        baseline = per_window[1 : usable + 1]
        z = volume_z(per_window[0], baseline) if usable >= MIN_BASELINE_WINDOWS else None
        out[series] = WindowStats(per_window[0], z)
    return out


def _baseline_windows(now: datetime, w: timedelta, data_start: datetime | None) -> int:
    """How many previous windows lie wholly after the store's first document."""
    if data_start is None:
        return 0
    k = 0
    while k < VOLUME_BASELINE_WINDOWS and now - w * (k + 2) >= data_start:
        k += 1
    return k


def evidence_ids(
    conn: Connection, rule: Any, key: str, now: datetime, model_version: str | None
) -> list[int]:
    """Up to ten documents of the window that best show why the alert fired.

    Most negative first for the 'bad news' kinds, most positive for mean_above, the most
    opinionated (largest |score|) for a volume spike.
    """
    src = rule_source(rule, model_version)
    start, end = window_bounds(now, rule.window_s)
    where = [src.time > start, src.time <= end, *src.where]
    if src.key is not None:
        where.append(src.key == key)
    order = {
        "mean_above": S.c.score.desc(),
        "volume_z": func.abs(S.c.score).desc(),
    }.get(rule.kind, S.c.score.asc())
    stmt = (
        select(D.c.id)
        .select_from(src.from_)
        .where(*where)
        .order_by(order, D.c.id)
        .limit(EVIDENCE_LIMIT)
    )
    return [int(i) for i in conn.execute(stmt).scalars()]
