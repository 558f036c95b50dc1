"""End to end: Kafka -> a real ``finsent worker`` process -> committed rows, on SQLite and on
PostgreSQL, against the scorer alone on the same texts in the same run.

1. Scorer alone: the worker's default backend and batch settings on the same texts, timed in
   this process just before each store's throughput run and just after it; the mean of the
   two is that store's reference (load from neighbours drifts over minutes). CPU time per
   record (worker process vs scorer alone) is reported too: it moves much less with load.
2. Throughput, per store: ``--n`` StockNet tweets are published to an embedded Tansu broker
   first, then one worker starts; records/s = records committed between the first and the
   last batch commit / that span (``documents.ingested_at``), the first batch excluded
   because it carries model load, group join and ONNX Runtime's first runs.
3. Latency, per store, same worker: records published at a fixed rate of half the measured
   maximum for ``--latency-s`` seconds, each carrying its send time (``sent_at``, an extra
   field the worker keeps in ``documents.extra``). Publish-to-row latency is given two ways:
   ``ingested_at - sent_at`` (exact clocks, but ``ingested_at`` is taken as the transaction
   begins, so the INSERTs and COMMIT are not in it) and ``first seen by another connection -
   sent_at`` (includes the COMMIT, late by up to the watcher's 25 ms poll). Both clocks are
   this machine's. The scorer alone is timed once more after the latency window: if a
   neighbour took part of the machine meanwhile, the load was not half the capacity any more.

PostgreSQL runs in a fresh database created here and dropped at the end.

    python bench/bench_e2e.py [--n 6000] [--stores sqlite,postgres] [--latency-s 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench_scorer import batched
from common import latency_summary_ms, load_average, machine, stocknet_texts, table, write_result
from pipeline import (
    RowWatcher,
    batch_rate,
    bench_settings,
    broker,
    doc_count,
    ingest_times,
    preload,
    publish_at_rate,
    store,
    wait_for_rows,
    workers,
)

from finsent.config import load_settings
from scorer.backends import load_backend
from storage.db import make_engine


class ScorerAlone:
    """The worker's backend and batch limits on the same texts, called the way the worker
    calls them (``bench_scorer.batched``), in this process."""

    def __init__(self) -> None:
        self.s = load_settings()
        self.backend = load_backend(self.s.model, backend=self.s.backend, device="cpu",
                                    max_length=self.s.max_length, threads=self.s.threads)

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        got = batched(self.backend, texts, self.s.batch_max_size, self.s.batch_max_tokens,
                      self.s.batch_call_cost_tokens)
        got["backend"] = self.backend.model_version
        print("scorer alone", got["records_per_s"], "rec/s", load_average(), flush=True)
        return got


def run_store(bootstrap: str, kind: str, texts: list[str], lat_texts: list[str],
              latency_s: float, rate_fraction: float, alone: ScorerAlone) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with store(kind) as url:
        s = bench_settings(bootstrap, url)
        engine = make_engine(url)
        source = f"e2e{kind}"
        out["preload_s"] = round(preload(bootstrap, s.topic_comments, texts, source), 2)
        before = alone(texts)
        with workers(s, 1) as (w,):
            t0 = time.perf_counter()
            while doc_count(engine, source) == 0:  # the first batch carries the warm-up
                w.check_alive()
                time.sleep(0.05)
            cpu0, first = w.cpu_seconds(), doc_count(engine, source)
            wait_for_rows(engine, source, len(texts), timeout=3600, procs=[w], every=0.1)
            cpu = w.cpu_seconds() - cpu0
            out["wall_s_incl_startup"] = round(time.perf_counter() - t0, 1)
            times = [t for t, _ in ingest_times(engine, source)]
            out["throughput"] = batch_rate(times)
            out["worker_cpu_ms_per_record"] = round(cpu / (len(texts) - first) * 1000, 2)
            out["rss_kb_after_throughput"] = w.rss_kb()
            print(kind, "throughput", out["throughput"], load_average(), flush=True)
            after = alone(texts)  # the worker is idle now (an empty fetch every 50 ms)
            reference = statistics.mean([before["records_per_s"], after["records_per_s"]])
            alone_cpu = statistics.mean([before["cpu_ms_per_record"], after["cpu_ms_per_record"]])
            out["scorer_alone"] = {"before_records_per_s": before["records_per_s"],
                                   "after_records_per_s": after["records_per_s"],
                                   "reference_records_per_s": round(reference, 1),
                                   "cpu_ms_per_record": round(alone_cpu, 2)}
            out["ratio_vs_scorer_alone"] = round(
                out["throughput"]["records_per_s"] / reference, 3)
            out["cpu_ratio_scorer_over_worker"] = round(
                alone_cpu / out["worker_cpu_ms_per_record"], 3)

            rate = out["throughput"]["records_per_s"] * rate_fraction
            n_lat = max(50, int(rate * latency_s))
            lat_source = f"lat{kind}"
            sample = (lat_texts * (n_lat // len(lat_texts) + 1))[:n_lat]
            with RowWatcher(url, lat_source) as watcher:
                out["latency_publish"] = publish_at_rate(bootstrap, s.topic_comments, sample,
                                                         lat_source, rate)
                wait_for_rows(engine, lat_source, n_lat, timeout=600, procs=[w], every=0.2)
                time.sleep(0.2)
            rows = ingest_times(engine, lat_source)
            begun = [t - float(extra["sent_at"]) for t, extra in rows]
            out["latency_to_transaction_begin"] = latency_summary_ms(begun)
            out["latency_to_visible_row"] = latency_summary_ms(watcher.latencies())
            out["latency_batches"] = len({t for t, _ in rows})
            print(kind, "latency", out["latency_to_visible_row"], load_average(), flush=True)
            # Capacity right after the latency window: when a neighbour's load took part of
            # the machine meanwhile, "half the maximum" was not half any more; this shows it.
            drift = alone(texts)
            out["scorer_alone"]["after_latency_records_per_s"] = drift["records_per_s"]
            out["latency_load_vs_capacity_after"] = round(
                out["latency_publish"]["achieved_rate"] / drift["records_per_s"], 2)
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000, help="records for the throughput run")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--latency-s", type=float, default=20.0, help="seconds of fixed-rate load")
    ap.add_argument("--rate-fraction", type=float, default=0.5,
                    help="latency load as a fraction of the measured maximum")
    ap.add_argument("--name", default="e2e")
    args = ap.parse_args()

    result: dict[str, Any] = {"benchmark": "e2e", "machine": machine(), "args": vars(args),
                              "settings": {k: v for k, v in load_settings().model_dump().items()
                                           if k.startswith(("batch", "poll", "max_length",
                                                            "backend", "threads"))}}
    rows = stocknet_texts(args.n + 2000)
    texts, lat_texts = rows[: args.n], rows[args.n:]
    alone = ScorerAlone()
    stores: dict[str, Any] = {}
    with broker() as b:
        for kind in args.stores.split(","):
            stores[kind] = run_store(b.bootstrap, kind, texts, lat_texts, args.latency_s,
                                     args.rate_fraction, alone)
    result["stores"] = stores

    rows_out = []
    for kind, v in stores.items():
        vis = v["latency_to_visible_row"]
        rows_out.append([
            kind, v["scorer_alone"]["reference_records_per_s"],
            v["throughput"]["records_per_s"], f"{v['ratio_vs_scorer_alone']:.0%}",
            f"{v['scorer_alone']['cpu_ms_per_record']} / {v['worker_cpu_ms_per_record']}",
            v["latency_publish"]["achieved_rate"],
            f"{v['scorer_alone']['after_latency_records_per_s']}",
            vis["p50_ms"], vis["p95_ms"], vis["p99_ms"]])
    human = table(rows_out, ["store", "scorer alone rec/s", "Kafka->SQL rec/s", "ratio",
                             "CPU ms/rec alone / worker", "latency load rec/s",
                             "scorer alone after", "p50 ms", "p95 ms", "p99 ms"])
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
