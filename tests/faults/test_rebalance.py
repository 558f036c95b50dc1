"""Fault 4: a second and a third worker join the group mid-stream, then leave.

Worker 1 runs throughout; workers 2 and 3 start while records flow, take partitions (each
stores records of its own), then leave: worker 2 with SIGTERM (a clean leave), worker 3 with
SIGKILL (a member the group must time out). Records keep flowing through every rebalance.
Afterwards: every record stored once, nothing dead-lettered, the group's lag 0, and worker 1
went through the rebalances without dying.
"""

from __future__ import annotations

import time

import pytest

from storage.models import DeadLetter
from tests.faults.conftest import (
    Feeder,
    WorkerProc,
    assert_exactly_once,
    count,
    fault_settings,
    say,
    wait_drained,
    wait_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.postgres]

LIMIT = 12_000  # records at most; the test stops publishing once the leaves are done
BACKLOG = 1000
SOURCE = "rebalance"


def test_workers_join_and_leave_mid_stream(  # type: ignore[no-untyped-def]
    tansu, topic_names, pg_url, fault_model_dir, workers, fault_report
):
    s = fault_settings(tansu.bootstrap, topic_names, pg_url, fault_model_dir)
    feeder = Feeder(s, SOURCE)
    # one inference thread each: three workers share two cores
    first = workers(s, "worker-1", threads=1)

    def flowing_until(cond, what: str, timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
        def check() -> bool:
            feeder.top_up(BACKLOG, LIMIT)
            for w in live:
                if not w.alive():
                    raise AssertionError(f"{w.name} died:\n{w.log_tail()}")
            return bool(cond())

        wait_until(check, timeout, what, poll=0.2)

    try:
        live: list[WorkerProc] = [first]
        flowing_until(lambda: first.sample("finsent_records_stored_total") > 0,
                      "worker 1 to store")
        second = workers(s, "worker-2", threads=1)
        third = workers(s, "worker-3", threads=1)
        live += [second, third]
        flowing_until(
            lambda: all(w.sample("finsent_records_stored_total") > 0 for w in (second, third)),
            "workers 2 and 3 to take partitions and store",
        )
        say(f"3 workers storing; {feeder.stored()} of {feeder.published} stored")
        assert second.terminate() == 0, second.log_tail()
        third.kill()
        live = [first]
        t_left = time.monotonic()
        stored_at_leave = feeder.stored()
        say(f"workers 2 and 3 left with {stored_at_leave} stored")
        flowing_until(lambda: feeder.stored() > stored_at_leave + BACKLOG // 2,
                      "worker 1 to carry on alone")
        recovery = time.monotonic() - t_left
        total = feeder.published
        wait_until(lambda: feeder.stored() >= total, 240, "every record stored")
        wait_drained(s)
        metrics = first.metrics()
    finally:
        feeder.close()
    assert first.terminate() == 0, first.log_tail()

    tally = assert_exactly_once(s.database_url, feeder.ids, SOURCE)
    assert count(s.database_url, DeadLetter) == 0
    # worker 1 saw the joins and the leaves as rebalances and survived them
    assert metrics["finsent_rebalances_total"] >= 2
    assert metrics["finsent_partitions_assigned"] == 12
    log2 = second.log_text()
    assert "partition(s) assigned" in log2 and "partitions revoked" in log2
    fault_report.add(
        "4 rebalance (PostgreSQL)",
        f"workers 2 and 3 join mid-stream, then leave (SIGTERM, SIGKILL); worker 1 saw "
        f"{metrics['finsent_rebalances_total']:.0f} rebalances",
        tally,
        f"worker 1 alone stored {BACKLOG // 2} more within {recovery:.1f} s of the leaves",
    )
