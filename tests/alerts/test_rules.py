"""Rule validation: the messages a user sees from the CLI and the dashboard."""

from __future__ import annotations

import pytest

from alerts.defaults import default_rules
from alerts.exceptions import RuleInvalid
from alerts.rules import parse_duration, validate_rule


def test_valid_rule_normalises_target_and_durations() -> None:
    spec = validate_rule(
        name="aapl-drop", kind="mean_below", scope="ticker", target=" aapl ", threshold=-0.3,
        resolve_threshold=-0.1, window_s="1h", for_s="5m", cooldown_s="30m",
    )
    assert spec.target == "AAPL"
    assert (spec.window_s, spec.for_s, spec.cooldown_s) == (3600, 300, 1800)
    assert "AAPL: mean < -0.3 over 1h" in spec.describe()


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kind": "mean_below", "threshold": -0.3, "resolve_threshold": -0.5}, ">= threshold"),
        ({"kind": "neg_share_above", "threshold": 0.6, "resolve_threshold": 0.7}, "<= threshold"),
        ({"kind": "neg_share_above", "threshold": 1.5}, "share in [0, 1]"),
        ({"kind": "mean_above", "threshold": 2}, "outside the score range"),
        ({"kind": "volume_z", "threshold": -1}, "positive z-score"),
        ({"kind": "median_below", "threshold": 0}, "kind"),
        ({"kind": "mean_below", "threshold": 0, "scope": "market", "target": "AAPL"}, "no target"),
        ({"kind": "mean_below", "threshold": 0, "scope": "kind", "target": "blog"}, "news"),
        ({"kind": "mean_below", "threshold": 0, "target": "not a ticker!"}, "ticker symbol"),
        ({"kind": "mean_below", "threshold": 0, "window_s": 10}, "window_s"),
        ({"kind": "mean_below", "threshold": 0, "min_count": 0}, "min_count"),
    ],
)
def test_invalid_rules_give_one_clear_line(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(RuleInvalid) as info:
        validate_rule(name="bad", **fields)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("rule 'bad':")
    assert needle in message


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1.5h") == 5400
    assert parse_duration("2d") == 172800
    with pytest.raises(RuleInvalid, match="bad duration"):
        parse_duration("soon")


def test_default_rules_are_valid_and_uniquely_named() -> None:
    rules = default_rules()
    names = [r.name for r in rules]
    assert len(set(names)) == len(names) == 4
    for spec in rules:
        validate_rule(**spec.model_dump())  # round-trips through validation
        assert spec.for_s > 0 or spec.kind == "volume_z"
        assert spec.resolve_threshold is not None  # every default has hysteresis
