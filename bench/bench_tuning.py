"""Scorer tuning: one change at a time against the same texts, rounds interleaved.

Each variant scores the same StockNet tweets end to end (tokenize, plan, run, softmax) with the
shipped INT8 model on ONNX Runtime directly, so that session options can be varied freely:

- threads: intra-op threads 1 vs all cores; spinning on (ONNX Runtime's default) vs off;
  ``threads_small``: the same on polls of 5 texts in arrival order (the fixed-rate regime);
  ``pool``: one single-threaded session per core, batches handed out to a thread per session
  (ONNX Runtime releases the GIL), i.e. parallel over batches instead of inside each matmul.
- ``--burners N`` runs N busy-loop processes meanwhile: a neighbour's job, under control.
- graph optimization level: basic vs all.
- batching: batch size (1 = one text per call), token budget, length-sorted vs arrival order,
  with accuracy: dynamic INT8 quantization scales activations per batch, so batch-mates
  shift a text's probabilities a little.
- tokenization: once (ids kept, padded in numpy) vs twice (count, then encode each batch).
- max_length 64 vs 128 (accuracy on the PhraseBank test split beside it).
- model (``--extra-onnx``): candidate ONNX files, e.g. an INT8 model quantized after ONNX
  Runtime's transformer fusions (QAttention), with their accuracy.

    python bench/bench_tuning.py [--n 2048] [--rounds 3] [--groups threads,graph,batch,...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from common import DATA, load_average, machine, stocknet_texts, table, write_result

from finsent.paths import DEFAULT_MODEL_DIR
from scorer.backends import INT8_FILE
from scorer.batcher import plan_batches
from scorer.data import LABEL2ID, phrasebank_split


class Runner:
    """The shipped INT8 model with explicit session options (what the variants change)."""

    def __init__(self, model_dir: str, threads: int = 0, spinning: bool = True,
                 level: str = "all", sessions: int = 1, onnx_file: str | None = None,
                 config: dict[str, str] | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        cfg = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self.labels = [cfg.id2label[i].lower() for i in range(len(cfg.id2label))]
        levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        self.sessions = []
        for _ in range(sessions):
            o = ort.SessionOptions()
            o.intra_op_num_threads = threads
            o.inter_op_num_threads = 1
            o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            o.graph_optimization_level = levels[level]
            o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            for key, value in (config or {}).items():
                o.add_session_config_entry(key, value)
            self.sessions.append(ort.InferenceSession(
                onnx_file or f"{model_dir}/{INT8_FILE}", o, providers=["CPUExecutionProvider"]))
        self.pool = ThreadPoolExecutor(sessions) if sessions > 1 else None

    def run_ids(self, ids: list[list[int]], session: int = 0) -> np.ndarray:
        """Pads token ids in numpy and runs one batch; returns probabilities."""
        width = max(map(len, ids))
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids)}
        return _softmax(self.sessions[session].run(["logits"], feed)[0])

    def run_texts(self, texts: list[str], max_length: int) -> np.ndarray:
        enc = self.tok(texts, truncation=True, max_length=max_length, padding=True,
                       return_tensors="np")
        feed = {k: v.astype(np.int64) for k, v in enc.items()}
        return _softmax(self.sessions[0].run(["logits"], feed)[0])

    def score(self, texts: list[str], *, batch_size: int = 64, batch_tokens: int = 4096,
              sort: bool = True, tokenize_once: bool = True, max_length: int = 128,
              ) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)))
        ids = self.tok(texts, truncation=True, max_length=max_length)["input_ids"]
        if sort:
            plan = plan_batches([len(i) for i in ids], max_batch_size=batch_size,
                                max_batch_tokens=batch_tokens)
        else:
            plan = [list(range(i, min(i + batch_size, len(texts))))
                    for i in range(0, len(texts), batch_size)]
        if self.pool is not None:
            jobs = [self.pool.submit(self.run_ids, [ids[i] for i in idx], n % len(self.sessions))
                    for n, idx in enumerate(plan)]
            for idx, job in zip(plan, jobs, strict=True):
                out[idx] = job.result()
            return out
        for idx in plan:
            if tokenize_once:
                out[idx] = self.run_ids([ids[i] for i in idx])
            else:
                out[idx] = self.run_texts([texts[i] for i in idx], max_length)
        return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


Variant = tuple[str, str, Callable[[], Runner], dict[str, Any]]
SPIN_50US = {"session.intra_op.spin_duration_us": "50"}


def variants(model: str, cores: int, groups: set[str], extra: list[str]) -> list[Variant]:
    """(group, label, runner factory, score kwargs); the first of each group is its reference
    (the settings finsent ships)."""
    out: list[Variant] = []

    def add(group: str, label: str, runner: Callable[[], Runner], **kw: Any) -> None:
        if group in groups:
            out.append((group, label, runner, kw))

    def shipped() -> Runner:
        return Runner(model, threads=0, spinning=False)

    add("threads", f"{cores} threads, spinning off (shipped)", shipped)
    add("threads", f"{cores} threads, spinning on (ORT default)",
        lambda: Runner(model, threads=cores, spinning=True))
    add("threads", "2 threads, spinning on, bounded to 50 us",
        lambda: Runner(model, threads=cores, spinning=True, config=SPIN_50US))
    add("threads", "1 thread, spinning off", lambda: Runner(model, threads=1, spinning=False))
    add("threads", f"pool: {cores} sessions x 1 thread",
        lambda: Runner(model, threads=1, spinning=False, sessions=cores))
    # The fixed-rate regime: polls of a few records in arrival order (no length sorting).
    add("threads_small", f"{cores} threads, spinning off (shipped), 5-text polls", shipped,
        batch_size=5, sort=False)
    add("threads_small", f"{cores} threads, spinning on, 5-text polls",
        lambda: Runner(model, threads=cores, spinning=True), batch_size=5, sort=False)
    add("threads_small", f"{cores} threads, spinning on, bounded to 50 us, 5-text polls",
        lambda: Runner(model, threads=cores, spinning=True, config=SPIN_50US),
        batch_size=5, sort=False)
    add("threads_small", "1 thread, 5-text polls",
        lambda: Runner(model, threads=1, spinning=False), batch_size=5, sort=False)
    add("graph", "graph optimization all (shipped)", shipped)
    add("graph", "graph optimization basic",
        lambda: Runner(model, threads=0, spinning=False, level="basic"))
    add("batch", "64 texts / 4096 tokens, sorted (shipped)", shipped)
    add("batch", "1 text per call", shipped, batch_size=1)
    add("batch", "4 / 4096", shipped, batch_size=4)
    add("batch", "8 / 4096", shipped, batch_size=8)
    add("batch", "16 / 4096", shipped, batch_size=16)
    add("batch", "32 / 4096", shipped, batch_size=32)
    add("batch", "128 / 8192", shipped, batch_size=128, batch_tokens=8192)
    add("batch", "256 / 16384", shipped, batch_size=256, batch_tokens=16384)
    add("batch", "64, arrival order (unsorted)", shipped, sort=False)
    add("tokenize", "tokenize once, pad in numpy", shipped)
    add("tokenize", "tokenize twice (count, then encode batch)", shipped, tokenize_once=False)
    add("max_length", "max_length 128 (shipped)", shipped)
    add("max_length", "max_length 64", shipped, max_length=64)
    if extra:
        add("model", "shipped model_int8.onnx", shipped)
    for path in extra:
        add("model", f"candidate {path}",
            lambda p=path: Runner(model, threads=0, spinning=False, onnx_file=p))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups",
                    default="threads,threads_small,graph,batch,tokenize,max_length")
    ap.add_argument("--extra-onnx", default="", help="comma-separated candidate ONNX files "
                    "(same tokenizer and labels) to time and score beside the shipped one")
    ap.add_argument("--burners", type=int, default=0,
                    help="busy-loop processes run alongside (controlled contention: what a "
                    "neighbour's job does to each variant)")
    ap.add_argument("--name", default="tuning")
    args = ap.parse_args()
    import os

    cores = os.cpu_count() or 1
    texts = stocknet_texts(args.n)
    extra = [p for p in args.extra_onnx.split(",") if p]
    groups = set(args.groups.split(",")) | ({"model"} if extra else set())
    vs = variants(args.model, cores, groups, extra)
    runners: dict[int, Runner] = {}
    factories: dict[Callable[[], Runner], Runner] = {}
    for i, (_, _, factory, _) in enumerate(vs):
        if factory not in factories:
            factories[factory] = factory()
        runners[i] = factories[factory]
    for r in runners.values():
        r.score(texts[:64])  # warm-up
    speeds: dict[int, list[float]] = {i: [] for i in range(len(vs))}
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(args.burners)]
    try:
        for rnd in range(args.rounds):
            for i, (group, label, _, kw) in enumerate(vs):
                t0 = time.perf_counter()
                runners[i].score(texts, **kw)
                speeds[i].append(len(texts) / (time.perf_counter() - t0))
                print(f"round {rnd + 1} {group}: {label}: {speeds[i][-1]:.1f} rec/s",
                      load_average(), flush=True)
    finally:
        for b in burners:
            b.kill()
            b.wait()

    split = phrasebank_split(DATA)
    acc: dict[int, float] = {}
    for i, (group, _, _, kw) in enumerate(vs):
        if group in ("max_length", "model", "batch"):
            probs = runners[i].score(split.test.texts, **kw)
            pred = [LABEL2ID[runners[i].labels[j]] for j in probs.argmax(axis=1)]
            acc[i] = round(float(np.mean([p == g for p, g in
                                          zip(pred, split.test.labels, strict=True)])), 4)
    results = []
    reference: dict[str, int] = {}
    for i, (group, label, _, kw) in enumerate(vs):
        med = statistics.median(speeds[i])
        ref = reference.setdefault(group, i)
        # Paired: each round's ratio to the reference timed moments before, then the median,
        # which cancels most of the load drift that the absolute figures carry.
        paired = [a / b for a, b in zip(speeds[i], speeds[ref], strict=True)]
        results.append({"group": group, "variant": label, "options": kw,
                        "records_per_s": round(med, 1),
                        "rounds": [round(x, 1) for x in speeds[i]],
                        "vs_group_reference": round(statistics.median(paired), 2),
                        "vs_reference_rounds": [round(x, 2) for x in paired],
                        **({"phrasebank_test_accuracy": acc[i]} if i in acc else {})})
    result = {"benchmark": "tuning", "machine": machine(), "args": vars(args),
              "texts": "StockNet tweets", "variants": results}
    human = table([[r["group"], r["variant"], r["records_per_s"], r["vs_group_reference"],
                    r.get("phrasebank_test_accuracy", "")] for r in results],
                  ["group", "variant", "records/s (median)", "x reference (paired median)",
                   "PB test acc"])
    write_result(args.name, result, human)


if __name__ == "__main__":
    main()
