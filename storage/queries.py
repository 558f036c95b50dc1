"""Read queries of the dashboard and the alert engine, plus the few small writes they need.

Every time-ranged query filters on an indexed ``event_at`` first (``documents(event_at)``,
``mentions(ticker, event_at)``) and joins scores through their ``(document_id, model_version)``
unique index, so a page costs what its time range holds, not what the store holds.
Ranges are half-open: ``start < event_at <= end`` (the alert windows' convention).
Results are plain lists of dicts (picklable, so the dashboard can cache them).

The market and ticker charts and the movers read the whole hours of a range from the hourly
rollups that ``save_batch`` keeps (``documents_hourly``, ``sentiment_hourly``,
``ticker_hourly``), and only the partial hours at its two edges from the raw tables
(``whole_hours``): a 90-day chart then costs about as much as a 24-hour one, and gives the
same numbers as a scan would. Minute buckets (ranges of a few hours) scan the raw tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from storage.models import (
    Alert,
    AlertRule,
    Document,
    DocumentsHourly,
    Mention,
    Price,
    Score,
    SentimentHourly,
    TickerHourly,
    utcnow,
)

Bind = Engine | Connection
MOVERS_MAX_PERIOD = timedelta(days=7)
ACTIVITY_JOIN_MAX = timedelta(days=14)
Bucket = Literal["minute", "hour", "day"]

D = Document.__table__
S = Score.__table__
M = Mention.__table__
A = Alert.__table__
R = AlertRule.__table__
P = Price.__table__
DH = DocumentsHourly.__table__
SH = SentimentHourly.__table__
TH = TickerHourly.__table__
HOUR = timedelta(hours=1)

# SQLite keeps DateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' text: a bucket is a prefix of it,
# which costs a third less than strftime() per row on a million-row range.
_SQLITE_BUCKET = {"minute": (16, ":00"), "hour": (13, ":00:00"), "day": (10, " 00:00:00")}


@contextmanager
def connect(bind: Bind) -> Iterator[Connection]:
    """A connection from an engine (closed after), or the caller's own (left open)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


@contextmanager
def begin(bind: Bind) -> Iterator[Connection]:
    """A transaction from an engine, or the caller's connection (the caller commits)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(stmt).mappings()]


def as_datetime(value: Any) -> datetime | None:
    """SQLite returns computed timestamps (buckets, max()) as text; PostgreSQL as datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


# --- time and model version ---------------------------------------------------------------


def data_span(bind: Bind) -> tuple[datetime | None, datetime | None]:
    """(oldest, newest) document ``event_at``; both come from the event_at index."""
    with connect(bind) as conn:
        lo = conn.execute(select(func.min(D.c.event_at))).scalar()
        hi = conn.execute(select(func.max(D.c.event_at))).scalar()
    return as_datetime(lo), as_datetime(hi)


def current_model_version(bind: Bind) -> str | None:
    """The model version of the newest score row: what the workers write now.

    Pages and alerts read one version so a rescoring backfill never mixes two models.
    """
    with connect(bind) as conn:
        return conn.execute(
            select(S.c.model_version).order_by(S.c.id.desc()).limit(1)
        ).scalar()


def pick_bucket(start: datetime, end: datetime) -> Bucket:
    """A bucket giving a few hundred points at most for the range."""
    span = (end - start).total_seconds()
    if span <= 6 * 3600:
        return "minute"
    if span <= 14 * 86400:
        return "hour"
    return "day"


def bucket_expr(bind: Bind, column: Any, bucket: Bucket) -> ColumnElement[Any]:
    """The start of the minute/hour/day of ``column``: text on SQLite, timestamp on PostgreSQL
    (``as_datetime`` reads both)."""
    if bind.dialect.name == "sqlite":
        length, suffix = _SQLITE_BUCKET[bucket]
        return func.substr(column, 1, length).concat(suffix)
    return func.date_trunc(bucket, column)


def _score_of(document_id: Any, model_version: str | None) -> ColumnElement[bool]:
    return and_(S.c.document_id == document_id, S.c.model_version == model_version)


def _scored(model_version: str | None) -> Any:
    """documents joined with their score of ``model_version``."""
    return D.join(S, _score_of(D.c.id, model_version))


def _neg() -> ColumnElement[Any]:
    return func.sum(case((S.c.label == "negative", 1), else_=0))


def whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole hours ``[first, stop)`` inside the range ``(start, end]``, which the hourly
    rollups answer; None when none fits. The rest, ``(start, first)`` and ``[stop, end]``,
    is at most two partial hours of raw rows."""
    first = start.replace(minute=0, second=0, microsecond=0) + HOUR
    stop = end.replace(minute=0, second=0, microsecond=0)
    return (first, stop) if first < stop else None


def _rollup_and_raw(
    column: Any,
    start: datetime,
    end: datetime,
    bucket: Bucket,
    raw: Callable[..., list[dict[str, Any]]],
    rolled: Callable[[datetime, datetime], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The rows of ``(start, end]``: ``rolled(first, stop)`` for its whole hours and
    ``raw(*conditions on column)`` for the partial hours at its edges; raw alone for minute
    buckets or when no whole hour fits. The caller sums the parts (``_merge``)."""
    hours = None if bucket == "minute" else whole_hours(start, end)
    if hours is None:
        return raw(column > start, column <= end)
    first, stop = hours
    return rolled(first, stop) + raw(column > start, column < first) + raw(
        column >= stop, column <= end
    )


def _merge(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], counters: dict[str, type]
) -> list[dict[str, Any]]:
    """Rows of the raw edges and of the rollup summed per key, sorted by key. Counters are
    cast (PostgreSQL sums a BIGINT column into a Decimal)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if "bucket" in row:
            row["bucket"] = as_datetime(row["bucket"])
        key = tuple(row[k] for k in keys)
        acc = merged.setdefault(key, {**{k: row[k] for k in keys}, **dict.fromkeys(counters, 0)})
        for name, cast in counters.items():
            acc[name] = cast(acc[name] + cast(row[name] or 0))
    return [merged[key] for key in sorted(merged)]


# --- market page ---------------------------------------------------------------------------


def market_index(
    bind: Bind, start: datetime, end: datetime, *, model_version: str | None, bucket: Bucket
) -> list[dict[str, Any]]:
    """Mean score per time bucket over every document: each document weighs one, so busy
    tickers and busy hours weigh by their volume (a volume-weighted market index)."""
    return index_from_kinds(
        market_by_kind(bind, start, end, model_version=model_version, bucket=bucket)
    )


_SENTIMENT_SUMS = {"n": int, "score_sum": float, "negatives": int}


def market_by_kind(
    bind: Bind, start: datetime, end: datetime, *, model_version: str | None, bucket: Bucket
) -> list[dict[str, Any]]:
    """Per bucket and source kind: scored documents, sum of scores, negatives. ONE query
    gives the market page both its index (``index_from_kinds``) and its volume by kind."""
    with connect(bind) as conn:

        def raw(*where: ColumnElement[bool]) -> list[dict[str, Any]]:
            b = bucket_expr(conn, D.c.event_at, bucket).label("bucket")
            stmt = (
                select(
                    b,
                    D.c.kind,
                    func.count().label("n"),
                    func.sum(S.c.score).label("score_sum"),
                    _neg().label("negatives"),
                )
                .select_from(_scored(model_version))
                .where(*where)
                .group_by(b, D.c.kind)
            )
            return _rows(conn, stmt)

        def rolled(first: datetime, stop: datetime) -> list[dict[str, Any]]:
            b = bucket_expr(conn, SH.c.bucket, bucket).label("bucket")
            stmt = (
                select(
                    b,
                    SH.c.kind,
                    func.sum(SH.c.n).label("n"),
                    func.sum(SH.c.sum_score).label("score_sum"),
                    func.sum(SH.c.n_negative).label("negatives"),
                )
                .where(
                    SH.c.model_version == model_version, SH.c.bucket >= first, SH.c.bucket < stop
                )
                .group_by(b, SH.c.kind)
            )
            return _rows(conn, stmt)

        rows = _rollup_and_raw(D.c.event_at, start, end, bucket, raw, rolled)
    return _merge(rows, ["bucket", "kind"], _SENTIMENT_SUMS)


def index_from_kinds(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``market_by_kind`` rows folded into the market index per bucket (as ``market_index``)."""
    folded: dict[datetime, list[float]] = {}
    for r in rows:
        acc = folded.setdefault(r["bucket"], [0, 0.0, 0])
        acc[0] += r["n"]
        acc[1] += r["score_sum"]
        acc[2] += r["negatives"]
    return [
        {"bucket": b, "n": n, "mean_score": total / n, "neg_share": neg / n}
        for b, (n, total, neg) in sorted(folded.items())
    ]


def volume_by_kind(
    bind: Bind, start: datetime, end: datetime, *, bucket: Bucket
) -> list[dict[str, Any]]:
    """Document count per bucket and source kind (news vs comments), scored or not."""
    with connect(bind) as conn:

        def raw(*where: ColumnElement[bool]) -> list[dict[str, Any]]:
            b = bucket_expr(conn, D.c.event_at, bucket).label("bucket")
            stmt = select(b, D.c.kind, func.count().label("n")).where(*where).group_by(b, D.c.kind)
            return _rows(conn, stmt)

        def rolled(first: datetime, stop: datetime) -> list[dict[str, Any]]:
            b = bucket_expr(conn, DH.c.bucket, bucket).label("bucket")
            stmt = (
                select(b, DH.c.kind, func.sum(DH.c.n).label("n"))
                .where(DH.c.bucket >= first, DH.c.bucket < stop)
                .group_by(b, DH.c.kind)
            )
            return _rows(conn, stmt)

        rows = _rollup_and_raw(D.c.event_at, start, end, bucket, raw, rolled)
    return _merge(rows, ["bucket", "kind"], {"n": int})


def top_movers(
    bind: Bind,
    start: datetime,
    end: datetime,
    *,
    model_version: str | None,
    limit: int = 10,
    min_count: int = 3,
    max_period: timedelta | None = MOVERS_MAX_PERIOD,
) -> list[dict[str, Any]]:
    """Tickers whose mean score changed most between the previous equal-length period and
    this one; both periods need ``min_count`` documents so one tweet is not a 'mover'.

    The period is the range, capped at ``max_period`` (a week): a 'mover' is a short-horizon
    idea, and the cap bounds the work on long ranges.
    """
    period = end - start
    if max_period is not None:
        period = min(period, max_period)
    start = end - period
    with connect(bind) as conn:
        now = _ticker_sums(conn, start, end, model_version)
        before = _ticker_sums(conn, start - period, start, model_version)
    movers = []
    for ticker in sorted(now.keys() & before.keys()):
        (n, total), (prev_n, prev_total) = now[ticker], before[ticker]
        if n >= min_count and prev_n >= min_count:
            mean, prev_mean = total / n, prev_total / prev_n
            movers.append(
                {
                    "ticker": ticker,
                    "n": n,
                    "mean_score": mean,
                    "prev_n": prev_n,
                    "prev_mean": prev_mean,
                    "change": mean - prev_mean,
                }
            )
    movers.sort(key=lambda r: abs(r["change"]), reverse=True)
    return movers[:limit]


def _ticker_sums(
    conn: Connection, start: datetime, end: datetime, model_version: str | None
) -> dict[str, tuple[int, float]]:
    """Per ticker, (scored mentions, sum of their scores) in ``(start, end]``."""

    def raw(*where: ColumnElement[bool]) -> list[dict[str, Any]]:
        stmt = (
            select(M.c.ticker, func.count().label("n"), func.sum(S.c.score).label("total"))
            .select_from(_scored(model_version).join(M, M.c.document_id == D.c.id))
            .where(*where)
            .group_by(M.c.ticker)
        )
        return _rows(conn, stmt)

    def rolled(first: datetime, stop: datetime) -> list[dict[str, Any]]:
        stmt = (
            select(
                TH.c.ticker,
                func.sum(TH.c.n).label("n"),
                func.sum(TH.c.sum_score).label("total"),
            )
            .where(TH.c.model_version == model_version, TH.c.bucket >= first, TH.c.bucket < stop)
            .group_by(TH.c.ticker)
        )
        return _rows(conn, stmt)

    rows = _rollup_and_raw(D.c.event_at, start, end, "hour", raw, rolled)
    return {
        r["ticker"]: (r["n"], r["total"])
        for r in _merge(rows, ["ticker"], {"n": int, "total": float})
    }


def ticker_activity(
    bind: Bind, start: datetime, end: datetime, *, limit: int = 200
) -> list[dict[str, Any]]:
    """Tickers mentioned in the range, busiest first (the ticker picker).

    Up to two weeks the documents(event_at) index finds the range's documents; longer
    ranges read mentions alone, whose (ticker, event_at) index covers the query, so no
    document row is fetched (a constant cost of one index pass).
    """
    if end - start <= ACTIVITY_JOIN_MAX:
        src: Any = D.join(M, M.c.document_id == D.c.id)
        where = [D.c.event_at > start, D.c.event_at <= end]
    else:
        src, where = M, [M.c.event_at > start, M.c.event_at <= end]
    stmt = (
        select(M.c.ticker, func.count().label("n"))
        .select_from(src)
        .where(*where)
        .group_by(M.c.ticker)
        .order_by(func.count().desc(), M.c.ticker)
        .limit(limit)
    )
    with connect(bind) as conn:
        return _rows(conn, stmt)


# --- ticker page ---------------------------------------------------------------------------


def ticker_timeline(
    bind: Bind,
    ticker: str,
    start: datetime,
    end: datetime,
    *,
    model_version: str | None,
    bucket: Bucket,
) -> list[dict[str, Any]]:
    """Per bucket: volume, mean score and negative share of one ticker (mentions index)."""
    with connect(bind) as conn:

        def raw(*where: ColumnElement[bool]) -> list[dict[str, Any]]:
            b = bucket_expr(conn, M.c.event_at, bucket).label("bucket")
            stmt = (
                select(
                    b,
                    func.count().label("n"),
                    func.sum(S.c.score).label("score_sum"),
                    _neg().label("negatives"),
                )
                .select_from(M.join(S, _score_of(M.c.document_id, model_version)))
                .where(M.c.ticker == ticker, *where)
                .group_by(b)
            )
            return _rows(conn, stmt)

        def rolled(first: datetime, stop: datetime) -> list[dict[str, Any]]:
            b = bucket_expr(conn, TH.c.bucket, bucket).label("bucket")
            stmt = (
                select(
                    b,
                    func.sum(TH.c.n).label("n"),
                    func.sum(TH.c.sum_score).label("score_sum"),
                    func.sum(TH.c.n_negative).label("negatives"),
                )
                .where(
                    TH.c.ticker == ticker,
                    TH.c.model_version == model_version,
                    TH.c.bucket >= first,
                    TH.c.bucket < stop,
                )
                .group_by(b)
            )
            return _rows(conn, stmt)

        rows = _rollup_and_raw(M.c.event_at, start, end, bucket, raw, rolled)
    return [
        {
            "bucket": r["bucket"],
            "n": r["n"],
            "mean_score": r["score_sum"] / r["n"],
            "neg_share": r["negatives"] / r["n"],
        }
        for r in _merge(rows, ["bucket"], _SENTIMENT_SUMS)
    ]


def price_series(bind: Bind, ticker: str, start: date, end: date) -> list[dict[str, Any]]:
    """Daily OHLCV of one ticker between two days (inclusive)."""
    stmt = (
        select(P.c.day, P.c.open, P.c.high, P.c.low, P.c.close, P.c.volume)
        .where(P.c.ticker == ticker, P.c.day >= start, P.c.day <= end)
        .order_by(P.c.day)
    )
    with connect(bind) as conn:
        return _rows(conn, stmt)


def _doc_columns() -> list[Any]:
    return [
        D.c.id,
        D.c.event_at,
        D.c.source,
        D.c.kind,
        D.c.title,
        D.c.text,
        D.c.url,
        S.c.label,
        S.c.score,
        S.c.p_negative,
        S.c.p_positive,
        S.c.model_version,
    ]


def _with_tickers(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds each document's tickers (one extra indexed query, no dialect-specific aggregate)."""
    ids = [r["id"] for r in rows]
    tickers: dict[int, list[str]] = {}
    if ids:
        stmt = (
            select(M.c.document_id, M.c.ticker)
            .where(M.c.document_id.in_(ids))
            .order_by(M.c.document_id, M.c.ticker)
        )
        for doc_id, ticker in conn.execute(stmt):
            tickers.setdefault(doc_id, []).append(ticker)
    for r in rows:
        r["tickers"] = ", ".join(tickers.get(r["id"], []))
    return rows


def latest_documents(
    bind: Bind,
    start: datetime,
    end: datetime,
    *,
    model_version: str | None,
    ticker: str | None = None,
    most_negative: bool = False,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest documents in the range (of one ticker when given), or the most negative first."""
    if ticker is None:
        src: Any = _scored(model_version)
        time_col = D.c.event_at
        where = [D.c.event_at > start, D.c.event_at <= end]
    else:  # walk the ticker's mentions(ticker, event_at) index backwards: LIMIT stops early
        src = M.join(D, D.c.id == M.c.document_id).join(
            S, and_(S.c.document_id == D.c.id, S.c.model_version == model_version)
        )
        time_col = M.c.event_at
        where = [M.c.ticker == ticker, M.c.event_at > start, M.c.event_at <= end]
    order = [S.c.score.asc(), D.c.id] if most_negative else [time_col.desc(), D.c.id.desc()]
    stmt: Select[Any] = select(*_doc_columns()).select_from(src).where(*where)
    with connect(bind) as conn:
        return _with_tickers(conn, _rows(conn, stmt.order_by(*order).limit(limit)))


def live_feed(
    bind: Bind, *, limit: int = 50, model_version: str | None = None
) -> list[dict[str, Any]]:
    """The newest scores written (any model version unless given), newest first."""
    stmt = select(*_doc_columns(), S.c.scored_at).select_from(
        S.join(D, D.c.id == S.c.document_id)
    )
    if model_version is not None:
        stmt = stmt.where(S.c.model_version == model_version)
    with connect(bind) as conn:
        return _with_tickers(conn, _rows(conn, stmt.order_by(S.c.id.desc()).limit(limit)))


def documents_by_ids(
    bind: Bind, ids: Sequence[int], *, model_version: str | None = None
) -> list[dict[str, Any]]:
    """Documents (with their newest or the given version's score), in the order of ``ids``."""
    if not ids:
        return []
    newest = (
        select(S.c.document_id, func.max(S.c.id).label("sid"))
        .where(S.c.document_id.in_(list(ids)))
        .group_by(S.c.document_id)
    )
    if model_version is not None:
        newest = newest.where(S.c.model_version == model_version)
    sub = newest.subquery()
    stmt = (
        select(*_doc_columns())
        .select_from(D.join(sub, sub.c.document_id == D.c.id).join(S, S.c.id == sub.c.sid))
    )
    with connect(bind) as conn:
        rows = {r["id"]: r for r in _with_tickers(conn, _rows(conn, stmt))}
    return [rows[i] for i in ids if i in rows]


# --- alerts ---------------------------------------------------------------------------------


def list_alerts(
    bind: Bind, *, status: Literal["open", "resolved"] | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Alerts with their rule's name and kind, newest first."""
    stmt = select(
        A,
        R.c.name.label("rule_name"),
        R.c.kind.label("rule_kind"),
        R.c.scope.label("rule_scope"),
        R.c.threshold.label("threshold"),
    ).select_from(A.join(R, R.c.id == A.c.rule_id))
    if status is not None:
        stmt = stmt.where(A.c.status == status)
    with connect(bind) as conn:
        return _rows(conn, stmt.order_by(A.c.opened_at.desc(), A.c.id.desc()).limit(limit))


def get_alert(bind: Bind, alert_id: int) -> dict[str, Any] | None:
    with connect(bind) as conn:
        row = conn.execute(select(A).where(A.c.id == alert_id)).mappings().first()
    return dict(row) if row else None


def newest_alert_id(bind: Bind) -> int:
    """The highest alert id (0 when none); a page compares it to notice new alerts."""
    with connect(bind) as conn:
        return int(conn.execute(select(func.coalesce(func.max(A.c.id), 0))).scalar() or 0)


def acknowledge_alert(bind: Bind, alert_id: int, *, at: datetime | None = None) -> bool:
    """Marks an alert seen by a person; False when it does not exist or was already seen."""
    with begin(bind) as conn:
        result = conn.execute(
            update(A)
            .where(A.c.id == alert_id, A.c.acknowledged_at.is_(None))
            .values(acknowledged_at=at or utcnow())
        )
    return result.rowcount == 1


def resolve_open_alerts(bind: Bind, rule_id: int, *, at: datetime | None = None) -> int:
    """Closes a rule's open alerts (the rule was disabled: nobody evaluates them any more)."""
    with begin(bind) as conn:
        result = conn.execute(
            update(A)
            .where(A.c.rule_id == rule_id, A.c.status == "open")
            .values(status="resolved", resolved_at=at or utcnow())
        )
    return result.rowcount


def mark_notified(bind: Bind, alert_id: int) -> None:
    with begin(bind) as conn:
        conn.execute(update(A).where(A.c.id == alert_id).values(notified=True))


# --- rules (validation is the alerts room's job) ------------------------------------------


def list_rules(bind: Bind) -> list[dict[str, Any]]:
    """Rules with their count of open alerts."""
    open_n = (
        select(func.count())
        .where(A.c.rule_id == R.c.id, A.c.status == "open")
        .scalar_subquery()
        .label("open_alerts")
    )
    with connect(bind) as conn:
        return _rows(conn, select(R, open_n).order_by(R.c.id))


def count_rules(bind: Bind) -> int:
    with connect(bind) as conn:
        return int(conn.execute(select(func.count()).select_from(R)).scalar() or 0)


def get_rule(bind: Bind, ref: int | str) -> Any | None:
    """A rule row by id (int, or digits not matching a name) or by name."""
    with connect(bind) as conn:
        if isinstance(ref, str):
            row = conn.execute(select(R).where(R.c.name == ref)).first()
            if row is not None or not ref.isdigit():
                return row
            ref = int(ref)
        return conn.execute(select(R).where(R.c.id == ref)).first()


def create_rule(bind: Bind, values: dict[str, Any]) -> int:
    with begin(bind) as conn:
        result = conn.execute(R.insert().values(**values))
        return int(result.inserted_primary_key[0])


def update_rule(bind: Bind, rule_id: int, values: dict[str, Any]) -> None:
    with begin(bind) as conn:
        conn.execute(update(R).where(R.c.id == rule_id).values(**values))


def delete_rule(bind: Bind, rule_id: int) -> None:
    """Deletes a rule and its alerts (history goes with it: disabling keeps it)."""
    with begin(bind) as conn:
        conn.execute(delete(A).where(A.c.rule_id == rule_id))
        conn.execute(delete(R).where(R.c.id == rule_id))


# --- SQL console ----------------------------------------------------------------------------


def schema_listing(bind: Bind) -> list[dict[str, Any]]:
    """Tables and views with their columns, for the SQL page's schema browser."""
    with connect(bind) as conn:
        insp = inspect(conn)
        out: list[dict[str, Any]] = []
        for kind, names in (("table", insp.get_table_names()), ("view", insp.get_view_names())):
            for name in sorted(names):
                if name == "alembic_version":
                    continue
                cols = [
                    {"column": c["name"], "type": str(c["type"])}
                    for c in insp.get_columns(name)
                ]
                out.append({"name": name, "type": kind, "columns": cols})
    return out

