"""The rules finsent ships: installed when the ``alert_rules`` table is empty.

Each rule is built by a function whose docstring says why its numbers are what they are.
The common thread is alert fatigue: every rule needs several documents (one angry tweet is
not news), must hold for a while before firing, resolves only well inside its threshold
(hysteresis) and then stays quiet for a cooldown.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from alerts.rules import RuleSpec
from storage import queries


def ticker_sentiment_drop() -> RuleSpec:
    """A ticker's mean score below -0.3 over the last hour, with at least 5 documents, for 5
    minutes; resolves above -0.1; 30 minutes of cooldown.

    Scores are p_positive - p_negative, so -0.3 means clearly more negative than positive
    mass on average (neutral-heavy streams sit near 0). Five documents keep a single post
    from firing it; five minutes let a burst of one story's re-posts pass; -0.1 on the way
    back stops a mean hovering around -0.3 from flapping open/closed.
    """
    return RuleSpec(
        name="ticker-sentiment-drop",
        kind="mean_below",
        scope="ticker",
        threshold=-0.3,
        resolve_threshold=-0.1,
        window_s=3600,
        min_count=5,
        for_s=300,
        cooldown_s=1800,
    )


def ticker_negative_share() -> RuleSpec:
    """More than 60% of a ticker's documents negative over the last hour (at least 10), for 5
    minutes; resolves at 40%; 30 minutes of cooldown.

    A mean can stay moderate while opinion polarises (many very negative, many positive);
    the negative share catches a crowd turning. Ten documents because a share of three is
    noise; 40% on the way back is still above a typical stream's ~20-30% negatives.
    """
    return RuleSpec(
        name="ticker-negative-share",
        kind="neg_share_above",
        scope="ticker",
        threshold=0.6,
        resolve_threshold=0.4,
        window_s=3600,
        min_count=10,
        for_s=300,
        cooldown_s=1800,
    )


def ticker_volume_spike() -> RuleSpec:
    """A ticker's document count in the last hour more than 3 standard deviations above its
    own previous 24 hours (at least 10 documents); resolves below z = 1.5; 1 hour cooldown.

    Volume moves before sentiment settles: a sudden burst of talk about one ticker is worth a
    look whatever its tone. The baseline is the ticker's own, so busy large caps and quiet
    small caps are judged fairly; no ``for`` delay because a spike is brief by nature.
    """
    return RuleSpec(
        name="ticker-volume-spike",
        kind="volume_z",
        scope="ticker",
        threshold=3.0,
        resolve_threshold=1.5,
        window_s=3600,
        min_count=10,
        for_s=0,
        cooldown_s=3600,
    )


def market_sentiment_drop() -> RuleSpec:
    """The whole market's mean below -0.2 over the last hour (at least 30 documents) for 10
    minutes; resolves above -0.05; 1 hour cooldown.

    Market-wide means move less than single tickers (many tickers average out), so a lower
    bar (-0.2) already signals broad risk-off talk; 30 documents and 10 minutes because a
    false market alarm costs more attention than a ticker one.
    """
    return RuleSpec(
        name="market-sentiment-drop",
        kind="mean_below",
        scope="market",
        threshold=-0.2,
        resolve_threshold=-0.05,
        window_s=3600,
        min_count=30,
        for_s=600,
        cooldown_s=3600,
    )


def default_rules() -> list[RuleSpec]:
    return [
        ticker_sentiment_drop(),
        ticker_negative_share(),
        ticker_volume_spike(),
        market_sentiment_drop(),
    ]


def install_default_rules(engine: Engine) -> int:
    """Stores the default rules when no rule exists yet; returns how many were added.

    An operator who deleted or edited rules keeps their choice: a non-empty table is left
    alone.
    """
    if queries.count_rules(engine) > 0:
        return 0
    specs = default_rules()
    try:
        with engine.begin() as conn:
            for spec in specs:
                queries.create_rule(conn, spec.model_dump())
    except IntegrityError:  # another process installed them at the same moment
        return 0
    return len(specs)
