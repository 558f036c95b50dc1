"""Memory: the resident set size of a real ``finsent worker`` process as records stream through.

One worker (default backend, SQLite store, alerts off) consumes short real texts (the shortest
distinct StockNet tweets, cycled with distinct ids: volume is the point, not the model) while a
publisher thread in this process stays at most ``--lead`` records ahead of what is committed,
so the broker never holds the whole run. ``VmRSS`` and ``VmHWM`` are read from
``/proc/PID/status`` every ``--every`` seconds and when the committed count crosses each
checkpoint. Flat means: RSS at the last checkpoint within 10% of RSS at 100k.

    python bench/bench_memory.py [--checkpoints 10000,100000,500000] [--max-minutes 60]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from common import load_average, machine, short_texts, table, write_result
from pipeline import bench_settings, broker, max_id, record, store, workers

from ingest.producer import Publisher, make_producer
from storage.db import make_engine


def publisher(bootstrap: str, topic: str, texts: list[str], total: int, lead: int,
              committed: list[int], stop: threading.Event, sent: list[int]) -> None:
    """Publishes ``total`` records, never more than ``lead`` ahead of ``committed[0]``."""
    with Publisher(make_producer(bootstrap, linger_ms=20, batch_size=256 * 1024)) as pub:
        i = 0
        while i < total and not stop.is_set():
            if i - committed[0] >= lead:
                pub.flush()
                time.sleep(0.2)
                continue
            chunk_end = min(total, i + 1000)
            for j in range(i, chunk_end):
                key, value = record(j, texts[j % len(texts)], "mem")
                pub.publish_raw(topic, value, key)
            i = chunk_end
            sent[0] = i
        pub.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", default="10000,100000,500000")
    ap.add_argument("--lead", type=int, default=20_000, help="max records published ahead")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="stop after this long even if the last checkpoint is not reached")
    ap.add_argument("--store", default="sqlite")
    ap.add_argument("--name", default="memory")
    args = ap.parse_args()
    checkpoints = sorted(int(x) for x in args.checkpoints.split(","))
    total = checkpoints[-1]
    texts = short_texts()
    result: dict[str, Any] = {"benchmark": "memory", "machine": machine(), "args": vars(args),
                              "texts": {"distinct": len(texts),
                                        "mean_chars": round(sum(map(len, texts)) / len(texts), 1)}}

    series: list[dict[str, Any]] = []
    marks: dict[int, dict[str, Any]] = {}
    with broker() as b, store(args.store) as url:
        s = bench_settings(b.bootstrap, url)
        engine = make_engine(url)
        committed, sent = [0], [0]
        stop = threading.Event()
        with workers(s, 1) as (w,):
            pub = threading.Thread(target=publisher, daemon=True,
                                   args=(b.bootstrap, s.topic_comments, texts, total, args.lead,
                                         committed, stop, sent))
            t0 = time.perf_counter()
            pub.start()
            deadline = t0 + args.max_minutes * 60
            last_sample = 0.0
            try:
                while committed[0] < total and time.perf_counter() < deadline:
                    w.check_alive()
                    committed[0] = max_id(engine)
                    now = time.perf_counter()
                    rss = w.rss_kb()
                    point = {"t_s": round(now - t0, 1), "records": committed[0],
                             "rss_mb": round(rss["VmRSS"] / 1024, 1),
                             "hwm_mb": round(rss["VmHWM"] / 1024, 1)}
                    for c in checkpoints:
                        if c not in marks and committed[0] >= c:
                            marks[c] = point
                            print("checkpoint", c, point, load_average(), flush=True)
                    if now - last_sample >= args.every:
                        last_sample = now
                        series.append(point)
                        rate = committed[0] / max(now - t0, 1e-9)
                        print(point, f"{rate:.0f} rec/s", load_average(), flush=True)
                    time.sleep(0.5)
            finally:
                stop.set()
                pub.join(timeout=30)
        engine.dispose()
    elapsed = time.perf_counter() - t0
    result["elapsed_s"] = round(elapsed, 1)
    result["records_committed"] = committed[0]
    result["mean_records_per_s"] = round(committed[0] / elapsed, 1)
    result["checkpoints"] = {str(c): marks.get(c) for c in checkpoints}
    result["series"] = series
    reached = [c for c in checkpoints if c in marks]
    base = 100_000 if 100_000 in marks else (reached[0] if reached else None)
    if base is not None and reached and reached[-1] != base:
        growth = marks[reached[-1]]["rss_mb"] / marks[base]["rss_mb"] - 1
        result["rss_growth"] = {"from": base, "to": reached[-1], "percent": round(growth * 100, 1),
                                "flat_within_10_percent": abs(growth) <= 0.10}
    missing = [c for c in checkpoints if c not in marks]
    if missing:
        result["not_reached"] = missing
    rows = [[c, m["rss_mb"], m["hwm_mb"], m["t_s"]] if m else [c, "not reached", "", ""]
            for c, m in ((c, marks.get(c)) for c in checkpoints)]
    human = table(rows, ["records committed", "VmRSS MB", "VmHWM MB", "at s"])
    if "rss_growth" in result:
        g = result["rss_growth"]
        human += f"\nRSS growth {g['from']:,} -> {g['to']:,}: {g['percent']}%"
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
