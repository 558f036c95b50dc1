"""A demo stream written by finsent itself: headlines and comments over well-known tickers.

Sentiment is not random noise: a schedule of regimes makes one ticker turn clearly negative for
a stretch (more talk about it, mostly bad news), then recover, then calm down, and the next
ticker takes its turn. That is what makes the dashboard move and alert rules fire in a demo.

Everything is drawn from ``random.Random(seed)`` and message times advance by ``1 / rate`` from
``start``, so the same (seed, start, rate) gives the same stream, byte for byte. Each message
carries ``sim_sentiment`` and ``sim_phase`` extra fields: the simulator's intent, for checking
the scorer against it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.exceptions import IngestError
from ingest.producer import Publisher
from ingest.schema import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Company:
    ticker: str
    name: str
    segment: str  # what its news talks about
    product: str


COMPANIES: tuple[Company, ...] = (
    Company("AAPL", "Apple", "iPhone", "Vision Pro headset"),
    Company("MSFT", "Microsoft", "Azure cloud", "Copilot assistant"),
    Company("TSLA", "Tesla", "EV delivery", "Cybertruck"),
    Company("JPM", "JPMorgan", "investment banking", "consumer lending unit"),
    Company("AMZN", "Amazon", "AWS", "Prime subscription"),
    Company("NVDA", "Nvidia", "data center", "Blackwell GPU"),
    Company("GOOGL", "Alphabet", "search advertising", "Gemini model"),
    Company("META", "Meta", "advertising", "Quest headset"),
    Company("NFLX", "Netflix", "subscriber", "ad-supported plan"),
    Company("XOM", "Exxon Mobil", "refining", "Permian output"),
    Company("BA", "Boeing", "commercial aircraft", "737 MAX"),
    Company("DIS", "Disney", "theme park", "Disney+ service"),
    Company("KO", "Coca-Cola", "beverage", "zero-sugar line"),
    Company("PFE", "Pfizer", "vaccine", "oncology pipeline"),
    Company("WMT", "Walmart", "grocery", "online marketplace"),
    Company("INTC", "Intel", "PC chip", "foundry business"),
    Company("GS", "Goldman Sachs", "trading", "asset management arm"),
    Company("AMD", "AMD", "server chip", "MI300 accelerator"),
    Company("NKE", "Nike", "footwear", "direct-to-consumer channel"),
    Company("CVX", "Chevron", "upstream", "Hess acquisition"),
)

_NEWS = {
    "positive": (
        "{name} beats quarterly estimates as {segment} revenue jumps {pct}%",
        "{name} raises full-year guidance on strong {segment} demand",
        "{name} shares surge after analysts upgrade the stock to buy",
        "{name} announces ${bn} billion share buyback and dividend increase",
        "{name} reports record {segment} sales, topping forecasts",
        "{name} wins major contract, lifting its growth outlook",
        "Investors cheer {name} as {product} demand exceeds expectations",
    ),
    "negative": (
        "{name} misses earnings expectations; shares slide {pct}%",
        "{name} cuts outlook, warning of weak {segment} demand",
        "Regulators open investigation into {name} over {product} safety",
        "{name} to lay off {jobs} workers as profits collapse",
        "{name} downgraded to sell on mounting losses in {segment}",
        "{name} shares plunge after CEO resigns unexpectedly",
        "{name} recalls {product} over defects, faces lawsuits",
    ),
    "neutral": (
        "{name} to report quarterly results on {weekday}",
        "{name} schedules annual shareholder meeting",
        "{name} names new chief financial officer",
        "{name} shares little changed ahead of the Fed decision",
        "{name} to present at investor conference next week",
        "{name} files routine quarterly report with the SEC",
    ),
}

_NEWS_BODY = {
    "positive": (
        "Analysts said the results show accelerating momentum and improving margins.",
        "The company said demand remained strong and it expects further growth next year.",
    ),
    "negative": (
        "Analysts warned that margins are under pressure and the outlook has deteriorated.",
        "The company said conditions worsened and it expects losses to continue.",
    ),
    "neutral": (
        "The company did not comment further; details are expected in a filing.",
        "Trading volume was in line with the 30-day average.",
    ),
}

_COMMENTS = {
    "positive": (
        "${ticker} to the moon, loading more calls before earnings",
        "Just bought more ${ticker}, {name} is crushing it this quarter",
        "{name} {segment} numbers look fantastic, long ${ticker}",
        "${ticker} breaking out, strong buy here",
        "Love how {name} keeps executing, ${ticker} is my best position",
    ),
    "negative": (
        "${ticker} dumping hard, glad I sold yesterday",
        "This {name} news is terrible, buying puts on ${ticker}",
        "Bagholding ${ticker} again, what a disaster",
        "{name} management keeps disappointing, ${ticker} going lower",
        "${ticker} looks awful, {segment} is falling apart",
    ),
    "neutral": (
        "Anyone watching ${ticker} today?",
        "What is the consensus for {name} earnings?",
        "${ticker} volume looks average so far",
        "Holding my ${ticker} shares, waiting for the report",
        "Where do you see {name} trading next month? ${ticker}",
    ),
}

_BASE_MIX = {"positive": 0.35, "neutral": 0.40, "negative": 0.25}
_PHASE_MIX = {
    "negative": {"positive": 0.05, "neutral": 0.15, "negative": 0.80},
    "recovery": {"positive": 0.60, "neutral": 0.30, "negative": 0.10},
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_HANDLES = ("trader", "bull", "bear", "quant", "options", "value", "swing", "dip")


@dataclass(frozen=True)
class RegimeSchedule:
    """Seconds of stream time per phase; the cycle repeats with the next ticker.

    ``calm``: everyone at base mood. ``negative``: the regime ticker draws ``attention`` of
    all messages and mostly bad news. ``recovery``: it bounces back, mostly good news.
    """

    calm_s: float = 60.0
    negative_s: float = 240.0
    recovery_s: float = 120.0
    attention: float = 0.35

    @property
    def cycle_s(self) -> float:
        return self.calm_s + self.negative_s + self.recovery_s

    def phase_at(self, elapsed_s: float) -> tuple[int, str]:
        """(cycle number, phase name) at ``elapsed_s`` seconds into the stream."""
        cycle, t = divmod(elapsed_s, self.cycle_s)
        if t < self.calm_s:
            phase = "calm"
        elif t < self.calm_s + self.negative_s:
            phase = "negative"
        else:
            phase = "recovery"
        return int(cycle), phase


def _company(ticker: str) -> Company:
    for c in COMPANIES:
        if c.ticker == ticker.upper():
            return c
    known = ", ".join(c.ticker for c in COMPANIES)
    raise IngestError(f"unknown simulator ticker {ticker!r}; choose one of {known}")


def generate_messages(
    *,
    seed: int = 0,
    count: int | None = None,
    start: datetime | None = None,
    rate: float = 5.0,
    regime_ticker: str | None = None,
    schedule: RegimeSchedule | None = None,
    run_id: str | None = None,
) -> Iterator[Message]:
    """The stream, without Kafka: endless when ``count`` is None.

    ``run_id`` goes into every id (default: from seed and start), so two demo runs do not
    deduplicate onto each other while one run replayed is the same documents again.
    """
    if rate <= 0:
        raise IngestError(f"rate must be positive (got {rate:g})")
    schedule = schedule or RegimeSchedule()
    start = (start or datetime.now(UTC)).astimezone(UTC)
    run_id = run_id or f"{start:%Y%m%dT%H%M%S}-s{seed}"
    rng = random.Random(seed)
    fixed = _company(regime_ticker) if regime_ticker else None
    # One rotation per seed, so every ticker gets its turn before one repeats.
    rotation = list(COMPANIES)
    rng.shuffle(rotation)
    i = 0
    while count is None or i < count:
        elapsed = i / rate
        cycle, phase = schedule.phase_at(elapsed)
        target = fixed or rotation[cycle % len(rotation)]
        if phase != "calm" and rng.random() < schedule.attention:
            company = target
        else:
            company = rng.choice(COMPANIES)
        in_regime = company is target and phase != "calm"
        mix = _PHASE_MIX[phase] if in_regime else _BASE_MIX
        sentiment = rng.choices(list(mix), weights=list(mix.values()))[0]
        kind = "news" if rng.random() < 0.3 else "comment"
        yield _message(
            rng, kind, company, sentiment,
            msg_id=f"sim-{run_id}-{i:07d}",
            at=start + timedelta(seconds=elapsed),
            phase=phase if in_regime else "calm",
        )
        i += 1


def _message(
    rng: random.Random, kind: str, c: Company, sentiment: str, *, msg_id: str,
    at: datetime, phase: str,
) -> Message:
    fill = {
        "name": c.name, "ticker": c.ticker, "segment": c.segment, "product": c.product,
        "pct": rng.randint(3, 18), "bn": rng.randint(2, 40), "jobs": rng.randrange(500, 12000, 100),
        "weekday": rng.choice(_WEEKDAYS),
    }
    extra = {"sim_sentiment": sentiment, "sim_phase": phase}
    if kind == "news":
        title = rng.choice(_NEWS[sentiment]).format(**fill)
        body = rng.choice(_NEWS_BODY[sentiment])
        return Message(
            id=msg_id, source="sim-newswire", kind="news", title=title, text=f"{title}. {body}",
            published_at=at, tickers=[c.ticker], url=f"https://news.finsent.example/{msg_id}",
            author="Sim Newswire", lang="en", **extra,
        )
    text = rng.choice(_COMMENTS[sentiment]).format(**fill)
    handle = f"{rng.choice(_HANDLES)}_{rng.randint(1, 999)}"
    # Half the comments carry explicit tickers; the rest rely on cashtags/names in the text.
    tickers = [c.ticker] if rng.random() < 0.5 else []
    return Message(
        id=msg_id, source="sim-social", kind="comment", text=text, published_at=at,
        tickers=tickers, author=handle, lang="en", **extra,
    )


def simulate(
    publisher: Publisher,
    topics: Mapping[str, str],
    *,
    rate: float = 5.0,
    duration_s: float | None = None,
    count: int | None = None,
    seed: int = 0,
    regime_ticker: str | None = None,
    schedule: RegimeSchedule | None = None,
    stop: threading.Event | None = None,
    log_every_s: float = 30.0,
) -> int:
    """Publishes the stream live (message times = now), paced at ``rate`` per second, until
    ``count`` messages, ``duration_s`` seconds or ``stop`` is set; returns the count sent."""
    if duration_s is not None and duration_s <= 0:
        raise IngestError(f"duration must be positive (got {duration_s:g})")
    if count is not None and count < 0:
        raise IngestError(f"count must be positive (got {count})")
    start_wall = time.monotonic()
    if duration_s is not None:
        limit = int(duration_s * rate)
        count = limit if count is None else min(count, limit)
    stream = generate_messages(
        seed=seed, count=count, rate=rate, regime_ticker=regime_ticker, schedule=schedule
    )
    flush_every = max(1, int(rate * 2))
    sent = 0
    regime = "none yet"
    next_log = start_wall + log_every_s
    try:
        for msg in stream:
            due = start_wall + sent / rate
            while True:
                if stop is not None and stop.is_set():
                    publisher.flush()
                    return sent
                delay = due - time.monotonic()
                if delay <= 0:
                    break
                if stop is not None:
                    stop.wait(min(delay, 0.5))
                else:
                    time.sleep(delay)
            publisher.publish(msg, topics[msg.kind])
            sent += 1
            phase = msg.extra_fields()["sim_phase"]
            if phase != "calm":
                regime = f"{','.join(msg.tickers) or 'ticker'} {phase}"
            if sent % flush_every == 0:
                publisher.flush()
            if time.monotonic() >= next_log:
                log.info("simulator: %d messages sent; latest regime: %s", sent, regime)
                next_log += log_every_s
    except BaseException:
        try:
            publisher.flush()
        except IngestError as flush_error:
            log.error("simulated messages sent before the interruption may be lost: %s",
                      flush_error)
        raise
    publisher.flush()
    return sent
