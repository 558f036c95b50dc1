"""Fault 1: worker processes SIGKILLed 20 times during a 20,000-record replay.

Two worker processes share the group; each kill hits one of them (alternating) at a random
moment once it has stored something since its start, and the killed one is restarted at once.
Five kills (the odd ones of the first ten, while the backlog is surely there) are aimed
mid-transaction: on PostgreSQL the test holds a lock on ``scores``
so the worker's transaction stops half done (documents inserted, scores waiting), sees the
worker's session wait on that lock, and kills it there. Afterwards: exactly 20,000 documents,
one score each per model version, no duplicates, no dead letters, offsets fully committed; and
after every kill the committed offsets were never ahead of what the store held.
"""

from __future__ import annotations

import os
import random
import statistics
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.db import make_engine
from storage.models import DeadLetter, Document
from tests.faults.conftest import (
    WorkerProc,
    assert_exactly_once,
    committed_not_ahead_of_store,
    count,
    fault_settings,
    new_publisher,
    publish_good,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.postgres]

N_RECORDS = int(os.environ.get("FAULT_CRASH_RECORDS", 20_000))
N_KILLS = int(os.environ.get("FAULT_CRASH_KILLS", 20))
CHUNK = 500  # records published whenever the backlog runs low
BACKLOG = 1500  # unstored records kept in the topics while kills remain
SOURCE = "crash"


def _with_app_name(url: str, name: str) -> str:
    return make_url(url).update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )


def _waiting_on_lock(admin, database: str, app: str) -> bool:  # type: ignore[no-untyped-def]
    with admin.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                    "AND application_name = :app AND wait_event_type = 'Lock' "
                    "AND xact_start IS NOT NULL"
                ),
                {"db": database, "app": app},
            ).scalar_one()
        )


def test_sigkill_twenty_times_exactly_once(  # type: ignore[no-untyped-def]
    tansu, topic_names, pg_url, pg_admin, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, pg_url, fault_model_dir, poll_max_records=200)
    database = make_url(pg_url).database
    rng = random.Random(20_000)
    publisher = new_publisher(s)
    published = 0
    generation = 0

    def spawn() -> tuple[WorkerProc, str]:
        nonlocal generation
        generation += 1
        app = f"fault-w{generation}"
        # one inference thread each: two workers share two cores
        proc = workers(s, app, database_url=_with_app_name(pg_url, app), threads=1)
        return proc, app

    def feed(stored: int) -> None:
        nonlocal published
        while published < N_RECORDS and published - stored < BACKLOG:
            n = min(CHUNK, N_RECORDS - published)
            publish_good(publisher, s, range(published, published + n), SOURCE)
            published += n

    slots = [spawn(), spawn()]
    kills: list[dict[str, float | str]] = []
    lock_engine = make_engine(pg_url)
    t_start = time.monotonic()
    try:
        for k in range(N_KILLS):
            target, app = slots[k % 2]
            mid_transaction = k % 2 == 1 and k < 10

            def ready(target: WorkerProc = target) -> bool:
                feed(count(s.database_url, Document))
                _note_recoveries(kills, s.database_url)
                if not target.alive():
                    raise AssertionError(f"{target.name} died:\n{target.log_tail()}")
                return target.sample("finsent_records_stored_total") > 0 or (
                    published >= N_RECORDS and count(s.database_url, Document) >= N_RECORDS
                )

            wait_until(ready, 180, f"{target.name} to store records before kill {k + 1}", 0.2)
            how = "random"
            if mid_transaction:
                with lock_engine.connect() as conn:
                    conn.execute(text("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE"))
                    try:
                        wait_until(
                            lambda app=app: (
                                feed(count(s.database_url, Document)) is None
                                and _waiting_on_lock(pg_admin, database, app)
                            ),
                            60, f"{app} to block inside its transaction", 0.05,
                        )
                        how = "mid-transaction"
                        target.kill()
                    finally:
                        conn.rollback()
            else:
                time.sleep(rng.uniform(0.0, 1.0))
                target.kill()
            docs = count(s.database_url, Document)
            kills.append({"at": time.monotonic(), "docs": docs, "how": how,
                          "backlog": published - docs})
            say(f"kill {k + 1} ({how}) of {target.name}: {docs} stored, backlog {published - docs}")
            # the delivery promise at the moment of each crash
            committed_not_ahead_of_store(s, SOURCE)
            slots[k % 2] = spawn()

        t_kills = time.monotonic() - t_start

        def finished() -> bool:
            docs = count(s.database_url, Document)
            feed(docs)
            _note_recoveries(kills, s.database_url)
            if int(time.monotonic()) % 10 == 0:
                say(f"draining: {docs} stored of {published} published")
            return published >= N_RECORDS and count(s.database_url, Document) >= N_RECORDS

        wait_until(finished, 240, "all 20,000 records stored")
        wait_drained(s)
    finally:
        lock_engine.dispose()
        publisher.close()
    say(f"all stored and committed; {len(kills)} kills")
    for proc, _ in slots:
        code = proc.terminate()
        assert code == 0, proc.log_tail()

    tally = assert_exactly_once(s.database_url, [f"{SOURCE}-{i}" for i in range(N_RECORDS)],
                                SOURCE)
    assert count(s.database_url, DeadLetter) == 0
    assert len(kills) == N_KILLS
    n_mid = sum(1 for k in kills if k["how"] == "mid-transaction")
    assert n_mid == sum(1 for k in range(N_KILLS) if k % 2 == 1 and k < 10)
    n_busy = sum(1 for k in kills if float(k["backlog"]) > 0)
    recoveries = [float(k["recovery"]) for k in kills if "recovery" in k]
    rec = (
        f"store grows again {statistics.median(recoveries):.1f} s (median), "
        f"{max(recoveries):.1f} s (max) after a kill"
        if recoveries
        else "n/a"
    )
    fault_report.add(
        "1 worker crash loop (PostgreSQL)",
        f"SIGKILL x{N_KILLS} of 2 worker processes ({n_mid} mid-transaction, {n_busy} with "
        f"a backlog), restart at once; kills took {t_kills:.0f} s",
        tally,
        rec,
    )


def _note_recoveries(kills: list[dict[str, float | str]], url: str) -> None:
    pending = [k for k in kills if "recovery" not in k]
    if not pending:
        return
    docs = count(url, Document)
    now = time.monotonic()
    for k in pending:
        if docs > float(k["docs"]):
            k["recovery"] = now - float(k["at"])
