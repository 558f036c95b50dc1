"""Where the time goes, and how far this is from what the CPU could do.

1. Pipeline profile: ``--n`` StockNet tweets are published to Tansu, one ``finsent worker``
   (SQLite store) starts, and once its first batch is committed py-spy (``pip install
   py-spy``) attaches and samples it until every record is stored (draining a backlog: big
   batches). Then, same worker, records are published at ``--fraction`` of that throughput
   for ``--rate-s`` seconds (the latency test's regime: small batches) under py-spy again.
   The worker's main thread's samples are put in buckets by the frames on their stack:
   tokenization, model (ONNX Runtime ``run``), Kafka client (fetch, poll, commit,
   keep-alive), idle in poll, database (SQLAlchemy, driver), decode/validate (JSON,
   pydantic), ticker extraction, other Python.
2. Model profile: ONNX Runtime's own profiler on the same texts, time per operator type
   (INT8 matmuls, dynamic quantization, attention's softmax, layer norms, ...).
3. The limit: FLOPs per record for this model (2 x multiply-adds of every linear layer per
   token, plus attention's two seq x seq products), from the real token counts of the texts,
   against the measured peak of this CPU: a large fp32 matmul (torch) and a large INT8 matmul
   (ONNX Runtime ``MatMulInteger``, the kernel the INT8 model uses), on all cores. The ratio
   reached / limit says how much headroom the model itself leaves.

    python bench/bench_profile.py [--n 6000]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from bench_scorer import batched
from common import (
    latency_summary_ms,
    load_average,
    machine,
    stocknet_texts,
    table,
    write_result,
)
from pipeline import (
    batch_rate,
    bench_settings,
    broker,
    doc_count,
    ingest_times,
    preload,
    publish_at_rate,
    store,
    wait_for_rows,
)
from pipeline import workers as start_workers

from finsent.config import load_settings
from scorer.backends import INT8_FILE, load_backend
from storage.db import make_engine

# (bucket, substrings of a frame); the first bucket any frame of a stack matches wins, so the
# specific ones come first (tokenizer calls happen inside the backend's predict).
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("tokenization", ("tokenization_utils", "tokenizers/", "_encode (scorer/backends.py",
                      "token_counts (scorer/backends.py")),
    ("model (ONNX Runtime run)", ("onnxruntime/",)),
    ("scores to Python (softmax, rounding)", ("scorer/backends.py",)),
    ("ticker extraction", ("scorer/tickers.py",)),
    ("decode + validate (JSON, pydantic)", ("ingest/schema.py", "pydantic")),
    ("database (SQLAlchemy + driver, one transaction/batch)",
     ("sqlalchemy/", "storage/", "sqlite3", "psycopg")),
    ("Kafka client (fetch, poll, commit, keep-alive)", ("kafka/", "ingest/consumer.py",
                                                        "keepalive (finsent/worker.py")),
    ("metrics + logging", ("prometheus_client", "logging/")),
]


def bucket_of(stack: str) -> str:
    for name, needles in BUCKETS:
        if any(n in stack for n in needles):
            return name
    return "other Python (worker loop, batching, dataclasses)"


def _attach(pid: int, rate: int, out_file: Path) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
         "--idle", "--threads", "-o", str(out_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _detach(spy_proc: subprocess.Popen[bytes]) -> None:
    spy_proc.send_signal(signal.SIGINT)
    spy_proc.wait(60)


def _buckets(out_file: Path, pid: int) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in out_file.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack.startswith(f"thread ({pid})"):
            continue  # only the main thread does the work; the others are Kafka's I/O threads
        total += int(n)
        leaf = stack.rsplit(";", 1)[-1]
        idle = "poll_records (ingest/consumer.py" in stack and (
            "selectors.py" in leaf or "threading.py" in leaf or "socket" in leaf)
        counts["idle: waiting for records (poll)" if idle else bucket_of(stack)] += int(n)
        leaves[leaf] += int(n)
    return {
        "samples_main_thread": total,
        "buckets_percent": {k: round(v / total * 100, 1) for k, v in counts.most_common()},
        "top_leaf_frames_percent": {k: round(v / total * 100, 1)
                                    for k, v in leaves.most_common(15)},
    }


def profile_pipeline(texts: list[str], lat_texts: list[str], rate: int,
                     fraction: float) -> dict[str, Any]:
    """The worker under py-spy twice: draining a backlog (throughput), then at a fixed
    publish rate of ``fraction`` x that throughput (the latency test's regime)."""
    tmp = Path(tempfile.mkdtemp(prefix="finsent-prof-"))
    out: dict[str, Any] = {}
    with broker() as b, store("sqlite") as url:
        s = bench_settings(b.bootstrap, url)
        engine = make_engine(url)
        preload(b.bootstrap, s.topic_comments, texts, "prof")
        with start_workers(s, 1) as (w,):
            while doc_count(engine, "prof") == 0:
                w.check_alive()
                time.sleep(0.05)
            spy = _attach(w.pid, rate, tmp / "throughput.txt")
            while doc_count(engine, "prof") < len(texts):
                w.check_alive()
                time.sleep(0.2)
            _detach(spy)
            times = [t for t, _ in ingest_times(engine, "prof")]
            out["throughput"] = {**batch_rate(times), **_buckets(tmp / "throughput.txt", w.pid)}
            print("throughput regime", out["throughput"]["buckets_percent"], load_average(),
                  flush=True)

            at = out["throughput"]["records_per_s"] * fraction
            spy = _attach(w.pid, rate, tmp / "rate.txt")
            publish = publish_at_rate(b.bootstrap, s.topic_comments, lat_texts, "rate", at)
            wait_for_rows(engine, "rate", len(lat_texts), timeout=600, procs=[w])
            _detach(spy)
            rows = ingest_times(engine, "rate")
            out["fixed_rate"] = {
                **publish, "batches": len({t for t, _ in rows}),
                "mean_batch_records": round(len(rows) / len({t for t, _ in rows}), 1),
                "latency_to_transaction_begin": latency_summary_ms(
                    [t - float(e["sent_at"]) for t, e in rows]),
                **_buckets(tmp / "rate.txt", w.pid)}
            print("fixed-rate regime", out["fixed_rate"]["buckets_percent"], load_average(),
                  flush=True)
        engine.dispose()
    return out


def profile_model(texts: list[str]) -> dict[str, Any]:
    """ONNX Runtime's profiler: share of model time per operator type."""
    import onnxruntime as ort

    s = load_settings()
    backend: Any = load_backend(s.model, backend="onnx-int8", device="cpu",
                                max_length=s.max_length, threads=s.threads)
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    tmp = tempfile.mkdtemp(prefix="finsent-ortprof-")
    opts.profile_file_prefix = os.path.join(tmp, "ort")
    opts.intra_op_num_threads = s.threads
    backend.session = ort.InferenceSession(str(Path(s.model) / INT8_FILE), opts,
                                           providers=["CPUExecutionProvider"])
    batched(backend, texts, s.batch_max_size, s.batch_max_tokens, s.batch_call_cost_tokens)
    path = backend.session.end_profiling()
    by_op: Counter[str] = Counter()
    for ev in json.loads(Path(path).read_text()):
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            by_op[ev["args"].get("op_name", "?")] += int(ev["dur"])
    for f in glob.glob(os.path.join(tmp, "*")):
        os.unlink(f)
    total = sum(by_op.values())
    return {op: round(us / total * 100, 1) for op, us in by_op.most_common(12)}


def flops_per_record(model_dir: Path, lengths: list[int]) -> float:
    """2 x multiply-adds: per token every linear layer (Q, K, V, output, two FFN), per layer
    the two seq x seq attention products, plus pooler and classifier once per record."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    labels = len(cfg.get("id2label", {0: 0, 1: 1, 2: 2}))
    per = []
    for n in lengths:
        linear = n * (4 * h * h + 2 * h * inter)
        attention = 2 * n * n * h
        per.append(2 * (layers * (linear + attention) + h * h + h * labels))
    return float(np.mean(per))


def peak_fp32(threads: int, size: int = 2048, dtype: str = "float32") -> float:
    """torch matmul peak; ``dtype`` bfloat16 runs on AMX / AVX512-BF16 where the CPU has them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dt = getattr(torch, dtype)
        a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
        a @ b
        best = 0.0
        for _ in range(7):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - t0))
        return best
    finally:
        torch.set_num_threads(before)


def peak_int8(threads: int, size: int = 2048) -> float:
    """ONNX Runtime MatMulInteger (uint8 x int8, the INT8 model's kernel) on one big matmul."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node], "mm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size]),
         helper.make_tensor_value_info("B", TensorProto.INT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"A": rng.integers(0, 255, (size, size), dtype=np.uint8),
            "B": rng.integers(-127, 127, (size, size), dtype=np.int8)}
    sess.run(None, feed)
    best = 0.0
    for _ in range(7):
        t0 = time.perf_counter()
        sess.run(None, feed)
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    del onnx
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000, help="records through the profiled worker")
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--fraction", type=float, default=0.5,
                    help="fixed publish rate of the second phase, x measured throughput")
    ap.add_argument("--rate-s", type=float, default=15.0, help="seconds of the second phase")
    ap.add_argument("--name", default="profile")
    ap.add_argument("--limits-only", action="store_true",
                    help="skip the py-spy and ONNX profiles: scorer alone against the peaks")
    args = ap.parse_args()
    texts = stocknet_texts(args.n)
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"benchmark": "profile", "machine": machine(), "args": vars(args)}

    s = load_settings()
    backend = load_backend(s.model, backend=s.backend, device="cpu", max_length=s.max_length,
                           threads=s.threads)
    lengths = backend.token_counts(texts)
    alone = batched(backend, texts, s.batch_max_size, s.batch_max_tokens, s.batch_call_cost_tokens)
    print("scorer alone", alone["records_per_s"], load_average(), flush=True)
    del backend
    n_rate = int(alone["records_per_s"] * args.fraction * args.rate_s)
    lat_texts = stocknet_texts(args.n + n_rate)[args.n:]
    result["scorer_alone"] = {"backend": s.backend, **alone}
    if not args.limits_only:
        result["pipeline"] = profile_pipeline(texts, lat_texts, args.rate, args.fraction)
        result["model_operators_percent"] = profile_model(texts[:1024])

    flops = flops_per_record(Path(s.model), lengths)
    peaks = {"fp32_torch_1_thread": peak_fp32(1), f"fp32_torch_{cores}_threads": peak_fp32(cores),
             "bf16_torch_1_thread": peak_fp32(1, dtype="bfloat16"),
             f"bf16_torch_{cores}_threads": peak_fp32(cores, dtype="bfloat16"),
             "int8_ort_1_thread": peak_int8(1), f"int8_ort_{cores}_threads": peak_int8(cores)}
    reached = {"scorer_alone": alone["records_per_s"]}
    if not args.limits_only:
        reached["pipeline_sqlite"] = result["pipeline"]["throughput"]["records_per_s"]
    limits = {kind: peaks[f"{kind}_{cores}_threads"] / flops
              for kind in ("fp32_torch", "bf16_torch", "int8_ort")}
    best = max(limits.values())
    result["limit"] = {
        "mean_tokens_per_record": round(float(np.mean(lengths)), 1),
        "gflop_per_record": round(flops / 1e9, 3),
        "measured_peak_gops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        **{f"records_per_s_at_{k}_peak": round(v, 1) for k, v in limits.items()},
        "reached_records_per_s": reached,
        "reached_gops_effective": {k: round(v * flops / 1e9, 1) for k, v in reached.items()},
        "scorer_fraction_of_best_peak": round(reached["scorer_alone"] / best, 3),
    }
    lim = result["limit"]
    limit_rows = [
        ["GFLOP per record (mean)", lim["gflop_per_record"]],
        *[[f"peak {k} GOP/s", v] for k, v in lim["measured_peak_gops"].items()],
        *[[f"limit at {k} peak, records/s", round(v, 1)] for k, v in limits.items()],
        *[[f"reached: {k}, records/s", v] for k, v in reached.items()],
    ]
    if args.limits_only:
        write_result(args.name, result, table(limit_rows, ["quantity", "value"]))
        return
    thr, fix = result["pipeline"]["throughput"], result["pipeline"]["fixed_rate"]
    names = list(dict.fromkeys([*thr["buckets_percent"], *fix["buckets_percent"]]))
    rows = [[k, f"{thr['buckets_percent'].get(k, 0)}%", f"{fix['buckets_percent'].get(k, 0)}%"]
            for k in names]
    human = "Worker main thread, share of samples:\n" + table(
        rows, ["where", f"draining a backlog ({thr['records_per_s']} rec/s)",
               f"fixed {fix['achieved_rate']} rec/s ({fix['mean_batch_records']} rec/batch)"])
    human += "\n\nModel time by ONNX operator:\n" + table(
        [[k, f"{v}%"] for k, v in result["model_operators_percent"].items()], ["op", "share"])
    human += "\n\n" + table(limit_rows, ["quantity", "value"])
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
