"""Scorer alone: the naive way against each finsent backend, same model, same texts, one run.

Naive = the ``transformers`` text-classification pipeline called once per text, torch fp32
(the shipped fp16 weights cast up). It runs twice, with torch's default thread count (all
cores) and with one thread, because on a busy machine torch's OpenMP threads wait on each
other and one thread can be several times faster; the speed-up is reported against the
FASTER of the two (each is probed on 256 texts, the faster then runs on all of them), so it
is never flattered by a badly configured baseline.

Each finsent backend is timed the way the worker uses it: ``token_counts`` + ``plan_batches``
(token budget, length-sorted) + ``predict`` per batch, tokenization included. Backend rounds
are interleaved (round 1 of every backend, then round 2, ...) and the median is kept, so a
load spike from a neighbour hits all of them alike. Accuracy of each backend on the PhraseBank
test split (968 sentences) is reported beside its speed, with the change against torch fp32.

    python bench/bench_scorer.py [--n 2048] [--naive-n 2048] [--rounds 3]
                                 [--backends onnx-int8,torch-bf16,onnx,torch]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    latency_summary_ms,
    load_average,
    machine,
    phrasebank_texts,
    stocknet_texts,
    table,
    write_result,
)

from finsent.config import Settings
from finsent.paths import DEFAULT_MODEL_DIR
from scorer.backends import Backend, load_backend, resolve_backend
from scorer.batcher import plan_batches
from scorer.data import LABEL2ID, phrasebank_split
from scorer.evaluate import metrics


def naive(model_dir: str, texts: list[str], max_length: int, threads: int) -> dict[str, Any]:
    """The pipeline, one text per call; ``threads`` 0 = torch's default."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32
        )
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1)
        for t in texts[:8]:  # warm-up
            pipe(t, truncation=True, max_length=max_length)
        lat = []
        c0 = time.process_time()
        t0 = time.perf_counter()
        for t in texts:
            s = time.perf_counter()
            pipe(t, truncation=True, max_length=max_length)
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {
        "records": len(texts),
        "threads": used,
        "records_per_s": round(len(texts) / wall, 1),
        "cpu_ms_per_record": round(cpu / len(texts) * 1000, 2),
        "latency_per_record": latency_summary_ms(lat),
    }

CALL_COST = Settings.model_fields["batch_call_cost_tokens"].default
"""The worker's default planning cost model (``FINSENT_BATCH_CALL_COST_TOKENS``)."""


def batched(backend: Backend, texts: list[str], max_size: int, max_tokens: int,
            call_cost: int = CALL_COST) -> dict[str, Any]:
    """One pass the way the worker scores a poll: plan by token budget, predict per batch."""
    backend.predict(texts[:8])  # warm-up (ONNX Runtime allocates on its first runs)
    c0 = time.process_time()
    t0 = time.perf_counter()
    lengths = backend.token_counts(texts)
    plan_s = time.perf_counter() - t0
    batch_lat = []
    for idx in plan_batches(lengths, max_batch_size=max_size, max_batch_tokens=max_tokens,
                            call_cost_tokens=call_cost):
        s = time.perf_counter()
        backend.predict([texts[i] for i in idx])
        batch_lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "records": len(texts),
        "records_per_s": round(len(texts) / wall, 1),
        "ms_per_record": round(wall / len(texts) * 1000, 3),
        "cpu_ms_per_record": round(cpu / len(texts) * 1000, 2),
        "batches": len(batch_lat),
        "batch_latency": latency_summary_ms(batch_lat),
        "token_count_s": round(plan_s, 3),
        "tokens": sum(lengths),
    }


def accuracy(backend: Backend, texts: list[str], labels: list[int], max_size: int,
             max_tokens: int, call_cost: int = CALL_COST) -> dict[str, Any]:
    """Accuracy with the worker's batching, and with one text per call: dynamic INT8
    quantization scales activations per batch, so a text's probabilities depend slightly on
    its batch-mates; the label agreement between the two says how much."""
    pred = [0] * len(texts)
    for idx in plan_batches(backend.token_counts(texts), max_batch_size=max_size,
                            max_batch_tokens=max_tokens, call_cost_tokens=call_cost):
        for i, s in zip(idx, backend.predict([texts[i] for i in idx]), strict=True):
            pred[i] = LABEL2ID[s.label]
    single = [LABEL2ID[backend.predict([t])[0].label] for t in texts]
    m, m1 = metrics(labels, pred), metrics(labels, single)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"],
            "accuracy_one_text_per_call": m1["accuracy"],
            "label_agreement_batched_vs_single": round(
                sum(a == b for a, b in zip(pred, single, strict=True)) / len(texts), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--n", type=int, default=2048, help="texts per data set")
    ap.add_argument("--naive-n", type=int, default=2048, help="texts the naive way times")
    ap.add_argument("--naive-probe", type=int, default=256,
                    help="texts each naive thread setting is first timed on")
    ap.add_argument("--naive-threads", default="0,1", help="torch threads for the naive way "
                    "(0 = torch's default); the faster one is the baseline")
    ap.add_argument("--backends", default="onnx-int8,torch-bf16,onnx,torch")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backend")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--call-cost", type=int, default=CALL_COST,
                    help="planner's per-call cost in tokens (0 = greedy fill)")
    ap.add_argument("--threads", type=int, default=0, help="backend threads (0 = all cores)")
    ap.add_argument("--name", default="scorer", help="result file name")
    args = ap.parse_args()

    result: dict[str, Any] = {"benchmark": "scorer", "machine": machine(), "args": vars(args)}
    sets = {"stocknet": stocknet_texts(args.n), "phrasebank": phrasebank_texts(args.n)}
    backends = args.backends.split(",")
    loaded = {b: load_backend(args.model, backend=b, device="cpu", max_length=args.max_length,
                              threads=args.threads) for b in backends}
    result["model_versions"] = {b: loaded[b].model_version for b in backends}
    result["default_backend_here"] = resolve_backend(Path(args.model), "auto", "cpu")[0]

    runs: dict[str, dict[str, Any]] = {name: {} for name in sets}
    for name, texts in sets.items():
        # Each thread setting is probed on the first --naive-probe texts; the faster one then
        # runs on all --naive-n texts and is the baseline (a slow setting on a busy machine
        # can take 100x longer, and its full run would tell nothing more).
        probes = {}
        for th in (int(x) for x in args.naive_threads.split(",")):
            probes[th] = naive(args.model, texts[: args.naive_probe], args.max_length, th)
            print(name, f"naive threads={th} probe", probes[th]["records_per_s"], "rec/s",
                  load_average(), flush=True)
        fastest = max(probes, key=lambda th: probes[th]["records_per_s"])
        if args.naive_n > args.naive_probe:
            probes[fastest] = naive(args.model, texts[: args.naive_n], args.max_length, fastest)
            print(name, f"naive threads={fastest} full", probes[fastest]["records_per_s"],
                  "rec/s", load_average(), flush=True)
        for th, got in probes.items():
            runs[name][f"naive_threads_{th or 'default'}"] = got
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for b in backends:
            for name, texts in sets.items():
                got = batched(loaded[b], texts, args.batch_size, args.batch_tokens,
                              args.call_cost)
                rounds.setdefault((name, b), []).append(got)
                print(name, b, f"round {r + 1}", got["records_per_s"], "rec/s", load_average(),
                      flush=True)
    for (name, b), got in rounds.items():
        best = sorted(got, key=lambda g: g["records_per_s"])[len(got) // 2]  # median round
        runs[name][b] = {**best, "rounds_records_per_s": [g["records_per_s"] for g in got]}
    for run in runs.values():
        naive_best = max(v["records_per_s"] for k, v in run.items() if k.startswith("naive"))
        run["naive_best_records_per_s"] = naive_best
        for b in backends:
            run[b]["speedup_vs_naive"] = round(run[b]["records_per_s"] / naive_best, 2)
    result["runs"] = runs

    split = phrasebank_split(DATA)
    acc = {b: accuracy(loaded[b], split.test.texts, split.test.labels, args.batch_size,
                       args.batch_tokens, args.call_cost) for b in backends}
    if "torch" in acc:
        for b in backends:
            acc[b]["points_vs_torch_fp32"] = round(
                (acc[b]["accuracy"] - acc["torch"]["accuracy"]) * 100, 2)
    result["phrasebank_test_accuracy"] = acc

    rows = []
    for name, run in runs.items():
        for k, v in run.items():
            if k.startswith("naive_threads"):
                rows.append([name, f"naive pipeline fp32, 1 text/call, {v['threads']} thr",
                             v["records_per_s"], v["latency_per_record"]["p50_ms"],
                             v["cpu_ms_per_record"], "1.00*"
                             if v["records_per_s"] == run["naive_best_records_per_s"] else "", ""])
        for b in backends:
            v = run[b]
            default = " (default here)" if b == result["default_backend_here"] else ""
            rows.append([name, f"{b} (batched){default}", v["records_per_s"], v["ms_per_record"],
                         v["cpu_ms_per_record"], v["speedup_vs_naive"], acc[b]["accuracy"]])
    human = table(rows, ["data", "scorer", "records/s", "ms/record", "CPU ms/record",
                         "x naive", "PB test acc"])
    human += ("\n* baseline = the faster naive configuration; ms/record is p50 per call for "
              "naive, wall/records for batched")
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
