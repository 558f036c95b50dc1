"""Scorer alone: the naive way (transformers pipeline, one text at a time, torch fp32) against
each finsent backend with token-budget batching, on StockNet tweets and PhraseBank sentences,
with each backend's accuracy on the PhraseBank test split beside its speed.

    python bench/bench_scorer.py [--n 2048] [--naive-n 512] [--backends onnx-int8,onnx,torch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from common import DATA, machine, stocknet_texts, write_result  # noqa: E402

from finsent.paths import DEFAULT_MODEL_DIR  # noqa: E402
from scorer.backends import load_backend  # noqa: E402
from scorer.batcher import plan_batches  # noqa: E402
from scorer.data import LABEL2ID, phrasebank_split  # noqa: E402
from scorer.evaluate import metrics  # noqa: E402


def naive(model_dir, texts: list[str], max_length: int) -> dict:  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, torch_dtype=torch.float32
    )
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1)
    pipe(texts[0], truncation=True, max_length=max_length)  # warm-up
    lat = []
    t0 = time.perf_counter()
    for t in texts:
        s = time.perf_counter()
        pipe(t, truncation=True, max_length=max_length)
        lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    return {
        "records": len(texts),
        "records_per_s": round(len(texts) / wall, 1),
        "latency_ms_p50": round(statistics.median(lat) * 1000, 2),
    }


def batched(backend, texts: list[str], max_size: int, max_tokens: int) -> dict:  # type: ignore[no-untyped-def]
    backend.predict(texts[:8])  # warm-up
    t0 = time.perf_counter()
    lengths = backend.token_counts(texts)
    batch_lat = []
    for idx in plan_batches(lengths, max_batch_size=max_size, max_batch_tokens=max_tokens):
        s = time.perf_counter()
        backend.predict([texts[i] for i in idx])
        batch_lat.append((time.perf_counter() - s, len(idx)))
    wall = time.perf_counter() - t0
    return {
        "records": len(texts),
        "records_per_s": round(len(texts) / wall, 1),
        "batches": len(batch_lat),
        "batch_latency_ms_p50": round(statistics.median(b for b, _ in batch_lat) * 1000, 2),
        "latency_ms_per_record": round(wall / len(texts) * 1000, 3),
    }


def accuracy(backend, split) -> dict:  # type: ignore[no-untyped-def]
    pred = []
    texts = split.test.texts
    for idx in plan_batches(backend.token_counts(texts), max_batch_size=64, max_batch_tokens=4096):
        for i, s in zip(idx, backend.predict([texts[i] for i in idx]), strict=True):
            pred.append((i, LABEL2ID[s.label]))
    pred.sort()
    m = metrics(split.test.labels, [p for _, p in pred])
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--naive-n", type=int, default=2048)
    ap.add_argument("--backends", default="onnx-int8,onnx,torch")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    args = ap.parse_args()

    split = phrasebank_split(DATA)
    sets = {
        "stocknet": stocknet_texts(args.n),
        "phrasebank": (split.train.texts + split.test.texts)[: args.n],
    }
    result: dict = {"benchmark": "scorer", "machine": machine(), "args": vars(args), "runs": {}}
    for name, texts in sets.items():
        run: dict = {
            "naive_pipeline_fp32": naive(args.model, texts[: args.naive_n], args.max_length)
        }
        for b in args.backends.split(","):
            backend = load_backend(args.model, backend=b, device="cpu", max_length=args.max_length)
            run[b] = batched(backend, texts, args.batch_size, args.batch_tokens)
            run[b]["speedup_vs_naive"] = round(
                run[b]["records_per_s"] / run["naive_pipeline_fp32"]["records_per_s"], 2
            )
        result["runs"][name] = run
    acc: dict = {}
    for b in args.backends.split(","):
        backend = load_backend(args.model, backend=b, device="cpu", max_length=args.max_length)
        acc[b] = accuracy(backend, split)
    result["phrasebank_test_accuracy"] = acc
    write_result("scorer", result)


if __name__ == "__main__":
    main()
