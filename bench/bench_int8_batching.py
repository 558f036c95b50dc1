"""INT8 accuracy and speed against batch size: what batch-mates do to dynamic quantization.

The shipped INT8 model quantizes activations dynamically, one scale per tensor, i.e. per
BATCH: a text's probabilities depend slightly on the texts it is scored with, and so does
accuracy. This measures, for each max batch size (token budget 4096, length-sorted plans as
the worker makes them):

- PhraseBank test accuracy over ``--seeds`` random arrival orders cut into polls of 500 (the
  worker plans batches per poll), as mean / min / max, next to torch fp32 (which batching
  does not change);
- records/s on StockNet tweets, rounds interleaved, each size's ratio to batch size 64
  (the shipped default) taken per round and the median kept.

    python bench/bench_int8_batching.py [--sizes 1,2,4,8,16,32,64] [--seeds 5] [--rounds 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from common import DATA, load_average, machine, stocknet_texts, table, write_result

from finsent.paths import DEFAULT_MODEL_DIR
from scorer.backends import Backend, load_backend
from scorer.batcher import plan_batches
from scorer.data import LABEL2ID, phrasebank_split


def predict_polls(backend: Backend, texts: list[str], size: int, seed: int,
                  poll: int = 500) -> list[int]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    pred = [0] * len(texts)
    for start in range(0, len(order), poll):
        chunk = order[start: start + poll]
        lengths = backend.token_counts([texts[i] for i in chunk])
        for idx in plan_batches(lengths, max_batch_size=size, max_batch_tokens=4096):
            ids = [chunk[i] for i in idx]
            for i, s in zip(ids, backend.predict([texts[i] for i in ids]), strict=True):
                pred[i] = LABEL2ID[s.label]
    return pred


def speed(backend: Backend, texts: list[str], size: int) -> float:
    t0 = time.perf_counter()
    lengths = backend.token_counts(texts)
    for idx in plan_batches(lengths, max_batch_size=size, max_batch_tokens=4096):
        backend.predict([texts[i] for i in idx])
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--sizes", default="1,2,4,8,16,32,64")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=1024, help="StockNet tweets timed per round")
    ap.add_argument("--name", default="int8_batching")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    int8 = load_backend(args.model, backend="onnx-int8", device="cpu")
    fp32 = load_backend(args.model, backend="torch", device="cpu")
    split = phrasebank_split(DATA)
    texts, gold = split.test.texts, split.test.labels

    def acc(pred: list[int]) -> float:
        return sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)

    reference = acc(predict_polls(fp32, texts, 64, 0))
    accuracy: dict[int, list[float]] = {}
    for size in sizes:
        accuracy[size] = [acc(predict_polls(int8, texts, size, seed))
                          for seed in range(args.seeds)]
        print("batch", size, "accuracy", [round(a, 4) for a in accuracy[size]], flush=True)

    tweets = stocknet_texts(args.n)
    speed(int8, tweets[:64], 8)  # warm-up
    rates: dict[int, list[float]] = {s: [] for s in sizes}
    for r in range(args.rounds):
        for size in sizes:
            rates[size].append(speed(int8, tweets, size))
        print("round", r + 1, {s: round(v[-1], 1) for s, v in rates.items()}, load_average(),
              flush=True)
    base = 64 if 64 in sizes else sizes[-1]
    rows: list[dict[str, Any]] = []
    for size in sizes:
        a = accuracy[size]
        rows.append({
            "max_batch_size": size,
            "accuracy_mean": round(statistics.mean(a), 4),
            "accuracy_min": round(min(a), 4),
            "accuracy_max": round(max(a), 4),
            "points_vs_torch_fp32_mean": round((statistics.mean(a) - reference) * 100, 2),
            "records_per_s_median": round(statistics.median(rates[size]), 1),
            "vs_batch_64_paired_median": round(statistics.median(
                x / y for x, y in zip(rates[size], rates[base], strict=True)), 2),
        })
    result = {"benchmark": "int8_batching", "machine": machine(), "args": vars(args),
              "torch_fp32_accuracy": round(reference, 4), "sizes": rows}
    human = table([[r["max_batch_size"], r["accuracy_mean"],
                    f"{r['accuracy_min']}-{r['accuracy_max']}", r["points_vs_torch_fp32_mean"],
                    r["records_per_s_median"], r["vs_batch_64_paired_median"]] for r in rows],
                  ["max batch", "INT8 acc (mean)", "min-max", "points vs fp32",
                   "records/s", f"x batch {base}"])
    human += f"\ntorch fp32 accuracy: {reference:.4f} (any batching)"
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
