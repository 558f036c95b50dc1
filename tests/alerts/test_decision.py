"""The alert state machine without a database: firing, for delay, hysteresis, cooldown,
no duplicate opens, window edges, empty data."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alerts.decision import (
    SeriesState,
    WindowStats,
    breaches,
    decide,
    in_window,
    recovered,
    volume_z,
    window_bounds,
)
from alerts.rules import RuleSpec

T0 = datetime(2015, 3, 2, 14, 0, 0)


def rule(**kw: object) -> RuleSpec:
    base: dict[str, object] = {
        "name": "r",
        "kind": "mean_below",
        "threshold": -0.3,
        "resolve_threshold": -0.1,
        "min_count": 5,
        "for_s": 0,
        "cooldown_s": 0,
    }
    base.update(kw)
    return RuleSpec(**base)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(spec: RuleSpec, steps: list[tuple[float, WindowStats]]) -> list[str]:
    """Feeds successive evaluations; the open flag follows the actions like the engine does."""
    state = SeriesState()
    actions = []
    for t, stats in steps:
        d = decide(spec, stats, state, at(t))
        actions.append(d.action)
        state = d.state
    return actions


def test_fires_at_once_without_for_delay() -> None:
    d = decide(rule(), WindowStats(6, -0.5), SeriesState(), T0)
    assert d.action == "open"
    assert d.state.open and d.state.pending_since is None


def test_value_exactly_at_threshold_does_not_fire() -> None:
    assert decide(rule(), WindowStats(6, -0.3), SeriesState(), T0).action == "none"
    assert decide(rule(), WindowStats(6, -0.3001), SeriesState(), T0).action == "open"


def test_too_few_documents_never_fire() -> None:
    assert decide(rule(), WindowStats(4, -0.9), SeriesState(), T0).action == "none"
    assert decide(rule(), WindowStats(4, None), SeriesState(), T0).action == "none"


def test_empty_data_is_quiet_and_clears_pending() -> None:
    pending = SeriesState(pending_since=T0)
    d = decide(rule(for_s=300), WindowStats(0, None), pending, at(60))
    assert d.action == "none"
    assert d.state.pending_since is None


def test_for_delay_holds_then_fires() -> None:
    spec = rule(for_s=300)
    breach = WindowStats(10, -0.5)
    assert run(spec, [(0, breach), (120, breach), (299, breach), (300, breach)]) == [
        "pending",
        "pending",
        "pending",
        "open",
    ]


def test_for_delay_restarts_when_the_breach_is_interrupted() -> None:
    spec = rule(for_s=300)
    breach, calm = WindowStats(10, -0.5), WindowStats(10, 0.0)
    actions = run(spec, [(0, breach), (200, calm), (250, breach), (500, breach), (550, breach)])
    # pending restarted at 250, so 500 is only 250 s in; 550 is 300 s in.
    assert actions == ["pending", "none", "pending", "pending", "open"]


def test_pending_since_is_kept_in_the_state() -> None:
    d1 = decide(rule(for_s=300), WindowStats(10, -0.5), SeriesState(), T0)
    assert d1.state.pending_since == T0
    d2 = decide(rule(for_s=300), WindowStats(10, -0.5), d1.state, at(100))
    assert d2.state.pending_since == T0


def test_hysteresis_keeps_alert_open_between_thresholds() -> None:
    spec = rule()
    steps = [
        (0, WindowStats(10, -0.5)),  # opens
        (60, WindowStats(10, -0.25)),  # back above -0.3 but not above -0.1: stays open
        (120, WindowStats(10, -0.1)),  # at the resolve threshold: resolves
    ]
    assert run(spec, steps) == ["open", "update", "resolve"]


def test_without_resolve_threshold_it_resolves_at_the_threshold() -> None:
    spec = rule(resolve_threshold=None)
    assert run(spec, [(0, WindowStats(10, -0.5)), (60, WindowStats(10, -0.3))]) == [
        "open",
        "resolve",
    ]


def test_no_duplicate_open_while_open() -> None:
    spec = rule()
    breach = WindowStats(10, -0.8)
    actions = run(spec, [(t, breach) for t in range(0, 600, 60)])
    assert actions.count("open") == 1
    assert set(actions[1:]) == {"update"}


def test_open_alert_is_held_while_window_too_thin_to_judge() -> None:
    d = decide(rule(), WindowStats(2, None), SeriesState(open=True), T0)
    assert d.action == "update" and d.state.open


def test_open_alert_resolves_when_window_empties() -> None:
    d = decide(rule(), WindowStats(0, None), SeriesState(open=True), T0)
    assert d.action == "resolve"
    assert d.state.resolved_at == T0 and not d.state.open


def test_cooldown_blocks_reopening_then_allows_it() -> None:
    spec = rule(cooldown_s=1800)
    breach, good = WindowStats(10, -0.5), WindowStats(10, 0.2)
    actions = run(
        spec,
        [(0, breach), (60, good), (120, breach), (1859, breach), (1860, breach)],
    )
    assert actions == ["open", "resolve", "pending", "pending", "open"]


def test_cooldown_and_for_delay_combine() -> None:
    spec = rule(cooldown_s=600, for_s=300)
    state = SeriesState(resolved_at=T0)
    breach = WindowStats(10, -0.5)
    d = decide(spec, breach, state, at(500))  # pending starts at 500, cooldown until 600
    assert d.action == "pending"
    d = decide(spec, breach, d.state, at(700))  # cooldown over but held 200 s only
    assert d.action == "pending"
    d = decide(spec, breach, d.state, at(800))
    assert d.action == "open"


@pytest.mark.parametrize(
    ("kind", "threshold", "resolve", "bad", "between", "good"),
    [
        ("mean_above", 0.5, 0.3, 0.6, 0.4, 0.3),
        ("neg_share_above", 0.6, 0.4, 0.7, 0.5, 0.4),
        ("volume_z", 3.0, 1.5, 3.5, 2.0, 1.0),
    ],
)
def test_rising_kinds_fire_up_and_resolve_down(
    kind: str, threshold: float, resolve: float, bad: float, between: float, good: float
) -> None:
    spec = rule(kind=kind, threshold=threshold, resolve_threshold=resolve)
    steps = [(t, WindowStats(10, v)) for t, v in ((0, bad), (60, between), (120, good))]
    assert run(spec, steps) == ["open", "update", "resolve"]


def test_breach_and_recovery_directions() -> None:
    assert breaches("mean_below", -0.5, -0.3) and not breaches("mean_below", -0.2, -0.3)
    assert breaches("volume_z", 4, 3) and not breaches("volume_z", 3, 3)
    assert recovered("mean_below", -0.1, -0.1) and not recovered("mean_below", -0.2, -0.1)
    assert recovered("neg_share_above", 0.4, 0.4) and not recovered("neg_share_above", 0.5, 0.4)


def test_window_edges_start_excluded_end_included() -> None:
    start, end = window_bounds(T0, 3600)
    assert (start, end) == (T0 - timedelta(hours=1), T0)
    assert not in_window(start, T0, 3600)
    assert in_window(start + timedelta(microseconds=1), T0, 3600)
    assert in_window(T0, T0, 3600)
    assert not in_window(T0 + timedelta(microseconds=1), T0, 3600)


def test_consecutive_windows_count_each_document_once() -> None:
    t = T0 - timedelta(hours=1)  # exactly on the boundary between two windows
    previous_now = T0 - timedelta(hours=1)
    assert in_window(t, previous_now, 3600) != in_window(t, T0, 3600)


def test_volume_z_against_baseline() -> None:
    assert volume_z(5, []) is None
    assert volume_z(10, [2, 4, 2, 4]) == pytest.approx((10 - 3) / 1.0)
    # a flat baseline floors the deviation at one document instead of dividing by zero
    assert volume_z(9, [3, 3, 3]) == pytest.approx(6.0)
    assert volume_z(0, [0, 0, 0]) == 0.0
    assert volume_z(30, [10, 20, 10, 20]) == pytest.approx((30 - 15) / 5)
