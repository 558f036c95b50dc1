"""The streaming spine end to end: real Tansu, real SQLite and PostgreSQL, the real model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from sqlalchemy import func, select

from finsent.status import group_lag
from ingest.producer import Publisher, make_producer
from storage.db import make_engine
from storage.models import DeadLetter, Document, Mention, Score
from tests.integration.conftest import count, env_for, run_cli, stocknet_rows, wait_until

N_STOCKNET = 5000


def test_stocknet_replay_exactly_once_and_idempotent(shared_data, pipeline_settings, worker_thread):  # type: ignore[no-untyped-def]
    s = pipeline_settings
    rows = stocknet_rows(shared_data, N_STOCKNET)
    distinct = {r["tweet_id"] for r in rows}
    tickers_by_id: dict[str, set[str]] = {}
    for r in rows:
        tickers_by_id.setdefault(r["tweet_id"], set()).add(r["ticker"].upper())
    path = shared_data / "stocknet" / "stocknet_tweets_raw.csv.gz"

    with worker_thread():
        done = run_cli(s, "replay", str(path), "--format", "stocknet", "--limit", str(N_STOCKNET))
        assert done.returncode == 0, done.stderr
        wait_until(lambda: count(s.database_url, Document) >= len(distinct), 300, "documents")
        wait_until(lambda: sum(group_lag(s).values()) == 0, 60, "the group to catch up")

        engine = make_engine(s.database_url)
        with engine.connect() as conn:
            docs = (
                conn.execute(select(Document.external_id).where(Document.source == "stocknet"))
                .scalars()
                .all()
            )
            assert len(docs) == len(set(docs)) == len(distinct)
            assert set(docs) == distinct
            scored = conn.execute(
                select(Score.document_id, func.count()).group_by(Score.document_id)
            ).all()
            assert len(scored) == len(distinct) and all(n == 1 for _, n in scored)
            mentions = conn.execute(
                select(Document.external_id, Mention.ticker).join(Mention)
            ).all()
        got: dict[str, set[str]] = {}
        for ext, ticker in mentions:
            got.setdefault(ext, set()).add(ticker)
        # every ticker folder a tweet was filed under is a mention of its one document
        missing = [i for i, t in tickers_by_id.items() if not t <= got.get(i, set())]
        assert not missing, f"{len(missing)} documents lack their explicit tickers"
        before = (
            count(s.database_url, Document),
            count(s.database_url, Score),
            count(s.database_url, Mention),
        )

        again = run_cli(s, "replay", str(path), "--format", "stocknet", "--limit", str(N_STOCKNET))
        assert again.returncode == 0, again.stderr
        wait_until(lambda: sum(group_lag(s).values()) == 0, 300, "the second replay to drain")
        after = (
            count(s.database_url, Document),
            count(s.database_url, Score),
            count(s.database_url, Mention),
        )
        assert after == before
        engine.dispose()


def _malformed() -> list[tuple[str, bytes]]:
    """50 bad records: (what, raw value)."""
    good = {"id": "x", "source": "t", "kind": "news", "text": "Shares rose."}
    bad: list[tuple[str, bytes]] = []
    for i in range(10):
        bad.append(("bad json", b'{"id": "bad-%d", "text": ' % i))
    for i in range(10):
        rec = dict(good, id=f"m{i}")
        del rec["id"]
        bad.append(("missing id", json.dumps(rec).encode()))
    for i in range(10):
        bad.append(("empty text", json.dumps(dict(good, id=f"e{i}", text="  ")).encode()))
    for i in range(10):
        bad.append(("wrong types", json.dumps(dict(good, id=f"w{i}", tickers=5)).encode()))
    for i in range(9):
        bad.append(("invalid utf-8", b'{"id": "u%d", "text": "\xff\xfe bad"}' % i))
    big = json.dumps(dict(good, id="huge", text="a" * (5 * 1024 * 1024))).encode()
    bad.append(("5 MB text", big))
    return bad


def test_malformed_records_dead_lettered_good_ones_stored(pipeline_settings, worker_thread):  # type: ignore[no-untyped-def]
    s = pipeline_settings
    bad = _malformed()
    publisher = Publisher(make_producer(s.kafka_bootstrap, {"max_request_size": 8 * 1024 * 1024}))
    good_ids = []
    for i, (_, raw) in enumerate(bad):
        for j in range(2):
            gid = f"good-{i}-{j}"
            good_ids.append(gid)
            msg = {
                "id": gid,
                "source": "wire",
                "kind": "news",
                "text": f"$AAPL shares rose {i}.{j} percent after strong results.",
            }
            publisher.publish_raw(s.topic_news, json.dumps(msg).encode(), key=gid.encode())
        publisher.publish_raw(s.topic_news, raw, key=None)
    publisher.flush()
    publisher.close()

    with worker_thread():
        wait_until(
            lambda: (
                count(s.database_url, Document) >= len(good_ids)
                and count(s.database_url, DeadLetter) >= len(bad)
            ),
            180,
            "good records stored and bad ones dead-lettered",
        )
    engine = make_engine(s.database_url)
    with engine.connect() as conn:
        ids = set(conn.execute(select(Document.external_id)).scalars())
        dead = conn.execute(select(DeadLetter.reason, DeadLetter.raw)).all()
    engine.dispose()
    assert ids == set(good_ids)
    assert len(dead) == len(bad)
    assert all(reason.strip() for reason, _ in dead)
    assert {raw for _, raw in dead} == {raw for _, raw in bad}
    reasons = " | ".join(r for r, _ in dead).lower()
    for needle in ("json", "utf-8", "id", "text", "tickers", "bytes"):
        assert needle in reasons, f"no dead-letter reason mentions {needle!r}"


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    pipeline_settings,
):  # type: ignore[no-untyped-def]
    s = pipeline_settings
    n = 1500
    publisher = Publisher(make_producer(s.kafka_bootstrap))
    for i in range(n):
        msg = {
            "id": f"k{i}",
            "source": "crash",
            "kind": "comment" if i % 2 else "news",
            "text": f"Microsoft stock {'falls' if i % 3 else 'jumps'} on report {i}",
        }
        topic = s.topic_comments if i % 2 else s.topic_news
        publisher.publish_raw(topic, json.dumps(msg).encode(), key=f"k{i}".encode())
    publisher.flush()
    publisher.close()

    env = env_for(s)
    cmd = [sys.executable, "-m", "finsent.cli", "worker", "--no-alerts"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: count(s.database_url, Document) >= 200, 180, "the first batches")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    stored_at_kill = count(s.database_url, Document)
    assert stored_at_kill < n, "the worker finished before it could be killed"

    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: count(s.database_url, Document) >= n, 240, "all records after restart")
        wait_until(lambda: sum(group_lag(s).values()) == 0, 60, "offsets committed")
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()[-2000:]
    assert count(s.database_url, Document) == n
    assert count(s.database_url, Score) == n
    assert count(s.database_url, DeadLetter) == 0
