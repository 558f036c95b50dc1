"""Fault 1: worker processes SIGKILLed 20 times during a 20,000-record replay.

Two worker processes share the group; each kill hits one of them (alternating) at a random
moment once it has stored something since its start, and the killed one is restarted at once.
The replay is fed so that a backlog is always waiting, so every kill lands mid-stream.
Five kills (the odd ones of the first ten, while the backlog is surely there) are aimed
mid-transaction: the test holds a lock on ``scores`` so the worker's transaction stops half
done (its documents written, its scores waiting), sees that session wait on the lock with rows
written, and kills the worker there. Afterwards: exactly 20,000 documents, one score each per
model version, no duplicates, no dead letters, offsets fully committed; and after every kill
the committed offsets were never ahead of what the store held.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from storage.db import make_engine
from storage.models import DeadLetter, Document
from tests.faults.conftest import (
    Feeder,
    WorkerProc,
    assert_exactly_once,
    committed_not_ahead_of_store,
    count,
    fault_settings,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.postgres]

N_RECORDS = 20_000
N_KILLS = 20
BACKLOG = 1500  # unstored records kept waiting in the topics
SOURCE = "crash"


def _with_app_name(url: str, name: str) -> str:
    return make_url(url).update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )


def _blocked_mid_transaction(admin: Engine, database: str, app: str) -> bool:
    """The worker's session waits on our lock inside a transaction that has written rows
    (``backend_xid`` is assigned at the first write: its documents)."""
    with admin.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                    "AND application_name = :app AND wait_event_type = 'Lock' "
                    "AND backend_xid IS NOT NULL AND query ILIKE :insert_scores"
                ),
                {"db": database, "app": app, "insert_scores": "%insert into%scores%"},
            ).scalar_one()
        )


def _note_recoveries(kills: list[dict[str, Any]], stored: int) -> None:
    now = time.monotonic()
    for k in kills:
        if "recovery" not in k and stored > k["docs"]:
            k["recovery"] = now - k["at"]


def test_sigkill_twenty_times_exactly_once(  # type: ignore[no-untyped-def]
    tansu, topic_names, pg_url, pg_admin, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, pg_url, fault_model_dir, poll_max_records=200)
    database = make_url(pg_url).database or ""
    rng = random.Random(20_000)
    feeder = Feeder(s, SOURCE)
    started = 0

    def spawn() -> WorkerProc:
        nonlocal started
        started += 1
        app = f"fault-w{started}"
        # one inference thread each: two workers share two cores
        return workers(s, app, database_url=_with_app_name(pg_url, app), threads=1)

    def fed() -> int:
        stored = feeder.top_up(BACKLOG, N_RECORDS)
        _note_recoveries(kills, stored)
        return stored

    slots = [spawn(), spawn()]
    kills: list[dict[str, Any]] = []
    lock_engine = make_engine(pg_url)
    t_start = time.monotonic()
    try:
        for k in range(N_KILLS):
            target = slots[k % 2]

            def ready(target: WorkerProc = target) -> bool:
                stored = fed()
                if not target.alive():
                    raise AssertionError(f"{target.name} died:\n{target.log_tail()}")
                return target.sample("finsent_records_stored_total") > 0 or stored >= N_RECORDS

            wait_until(ready, 180, f"{target.name} to store before kill {k + 1}", 0.2)
            if k % 2 == 1 and k < 10:
                how = "mid-transaction"
                with lock_engine.connect() as conn:
                    conn.execute(text("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE"))
                    try:
                        wait_until(
                            lambda t=target: fed() >= 0
                            and _blocked_mid_transaction(pg_admin, database, t.name),
                            60, f"{target.name} to block inside its transaction", 0.05,
                        )
                        target.kill()
                    finally:
                        conn.rollback()
            else:
                how = "random"
                time.sleep(rng.uniform(0.0, 1.0))
                target.kill()
            docs = count(s.database_url, Document)
            kills.append({"at": time.monotonic(), "docs": docs, "how": how,
                          "backlog": feeder.published - docs})
            say(f"kill {k + 1} ({how}) of {target.name}: {docs} stored, "
                f"backlog {feeder.published - docs}")
            committed_not_ahead_of_store(s, SOURCE)  # the delivery promise at each crash
            slots[k % 2] = spawn()
        t_kills = time.monotonic() - t_start

        wait_until(lambda: fed() >= N_RECORDS, 240, "all 20,000 records stored")
        wait_drained(s)
    finally:
        lock_engine.dispose()
        feeder.close()
    say(f"all stored and committed after {len(kills)} kills")
    for proc in slots:
        assert proc.terminate() == 0, proc.log_tail()

    tally = assert_exactly_once(s.database_url, feeder.ids, SOURCE)
    assert tally.sent == N_RECORDS
    assert count(s.database_url, DeadLetter) == 0
    assert len(kills) == N_KILLS
    n_mid = sum(1 for k in kills if k["how"] == "mid-transaction")
    n_busy = sum(1 for k in kills if k["backlog"] > 0)
    recoveries = [k["recovery"] for k in kills if "recovery" in k]
    fault_report.add(
        "1 worker crash loop (PostgreSQL)",
        f"SIGKILL x{N_KILLS} of 2 worker processes ({n_mid} mid-transaction, {n_busy} with "
        f"a backlog), restart at once; kills took {t_kills:.0f} s",
        tally,
        f"store grows again {statistics.median(recoveries):.1f} s (median), "
        f"{max(recoveries):.1f} s (max) after a kill",
    )
