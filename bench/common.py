"""Shared by the benchmarks: machine description, data samples, statistics, JSON output.

Every benchmark writes ``bench/results/<name>.json`` (machine, arguments, figures) and prints a
table for humans. Timings are wall-clock (``time.perf_counter``) on whatever else the machine
is doing, so each JSON records the load average before and after the run: compare ratios
measured in one run, not absolute figures across runs.
"""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("FINSENT_DATA_DIR", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
_PACKAGES = ("torch", "onnxruntime", "transformers", "tokenizers", "kafka-python", "sqlalchemy",
             "psycopg", "numpy")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the figures were measured on; the GPU entry says when there was none."""
    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_flags": sorted(f for f in _FLAGS if f in flags),
        "memory_gb": mem_gb,
        "gpu": gpu or "none",
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "nice": os.nice(0),
        "load_average_at_start": load_average(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- data ------------------------------------------------------------------------------


def stocknet_rows(n: int | None = None) -> list[dict[str, str]]:
    """Distinct StockNet tweets (first filing of each tweet id), in file order."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    with gzip.open(DATA / "stocknet" / "stocknet_tweets_raw.csv.gz", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] in seen or not row["text"].strip():
                continue
            seen.add(row["tweet_id"])
            out.append(row)
            if n is not None and len(out) == n:
                break
    return out


def stocknet_texts(n: int) -> list[str]:
    return [r["text"] for r in stocknet_rows(n)]


def phrasebank_texts(n: int) -> list[str]:
    """PhraseBank 50Agree sentences (research split: train then test), at most ``n``."""
    from scorer.data import phrasebank_split

    split = phrasebank_split(DATA)
    return (split.train.texts + split.test.texts)[:n]


def short_texts(pool: int = 20_000, keep: int = 2_000) -> list[str]:
    """The ``keep`` shortest distinct StockNet tweets among the first ``pool``: real texts
    that cost few tokens, for runs whose point is volume (memory), not the model."""
    texts = sorted({r["text"].strip() for r in stocknet_rows(pool)}, key=lambda t: (len(t), t))
    texts = [t for t in texts if len(t) >= 20]
    return texts[:keep]


def shuffled(items: Sequence[Any], seed: int = 0) -> list[Any]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


# --- statistics ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2) if seconds else math.nan,
    }


# --- output ----------------------------------------------------------------------------


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, rule]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in body]
    return "\n".join(out)


def write_result(name: str, result: dict[str, Any], human: str = "") -> Path:
    """Writes ``bench/results/<name>.json`` (with the load average at the end) and prints
    the human table, or the JSON when there is none."""
    result.setdefault("machine", machine())
    result["machine"]["load_average_at_end"] = load_average()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(human or json.dumps(result, indent=2, default=str))
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path
