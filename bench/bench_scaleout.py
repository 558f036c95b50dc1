"""Scale-out: 1, 2 and 3 ``finsent worker`` processes in one consumer group on a 6-partition
topic, sharing one store (PostgreSQL by default, as in production).

For each worker count: start the workers on an empty topic, wait until the group is Stable
with every member (models loaded, partitions assigned), then publish ``--n`` StockNet tweets
and time the commits (``documents.ingested_at``, first batch excluded). Each worker gets
``FINSENT_THREADS = cores // workers`` (at least 1) unless ``--threads`` is given, which is
how an operator should split a machine; CPU seconds per record (user + system, all workers)
show the overhead that more processes add. On a 2-core machine this measures overhead, not
speed-up: the workers compete for the same two cores.

    python bench/bench_scaleout.py [--n 6000] [--workers 1,2,3] [--store postgres]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from common import load_average, machine, stocknet_texts, table, write_result
from pipeline import (
    batch_rate,
    bench_settings,
    broker,
    cpu_seconds,
    group_members,
    ingest_times,
    preload,
    store,
    wait_for_rows,
    workers,
)

from storage.db import make_engine


def run(bootstrap: str, kind: str, count: int, threads: int, texts: list[str]) -> dict[str, Any]:
    with store(kind) as url:
        s = bench_settings(bootstrap, url, partitions=6, threads=threads)
        engine = make_engine(url)
        source = f"scale{count}"
        with workers(s, count) as procs:
            deadline = time.monotonic() + 180
            while True:
                for p in procs:
                    p.check_alive()
                state, members = group_members(s)
                if state == "Stable" and members == count:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"group not stable with {count} members: {state}/{members}")
                time.sleep(0.5)
            time.sleep(1.0)
            cpu0 = sum(cpu_seconds(p.pid) for p in procs)
            publish_s = preload(bootstrap, s.topic_comments, texts, source)
            wait_for_rows(engine, source, len(texts), timeout=3600, procs=procs)
            cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
            rss = [p.rss_kb()["VmRSS"] // 1024 for p in procs]
        times = [t for t, _ in ingest_times(engine, source)]
        engine.dispose()
    out = {"workers": count, "threads_per_worker": threads, "publish_s": round(publish_s, 2),
           **batch_rate(times), "worker_cpu_s": round(cpu, 1),
           "cpu_ms_per_record": round(cpu / len(texts) * 1000, 2), "rss_mb_per_worker": rss}
    print(out, load_average(), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--store", default="postgres")
    ap.add_argument("--threads", type=int, default=0,
                    help="FINSENT_THREADS per worker; 0 = cores // workers (at least 1)")
    ap.add_argument("--name", default="scaleout")
    args = ap.parse_args()
    texts = stocknet_texts(args.n)
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"benchmark": "scaleout", "machine": machine(), "args": vars(args)}
    runs = []
    with broker() as b:
        for count in (int(x) for x in args.workers.split(",")):
            threads = args.threads or max(1, cores // count)
            runs.append(run(b.bootstrap, args.store, count, threads, texts))
    one = runs[0]["records_per_s"]
    for r in runs:
        r["speedup_vs_first"] = round(r["records_per_s"] / one, 2)
    result["runs"] = runs
    human = table([[r["workers"], r["threads_per_worker"], r["records_per_s"],
                    r["speedup_vs_first"], r["cpu_ms_per_record"], r["rss_mb_per_worker"]]
                   for r in runs],
                  ["workers", "threads each", "records/s", "x first", "CPU ms/record",
                   "RSS MB each"])
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
