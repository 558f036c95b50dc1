"""Shared by the benchmarks: machine description, data samples, JSON output."""

from __future__ import annotations

import csv
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("FINSENT_DATA_DIR", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def stocknet_texts(n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    with gzip.open(DATA / "stocknet" / "stocknet_tweets_raw.csv.gz", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] in seen:
                continue
            seen.add(row["tweet_id"])
            out.append(row["text"])
            if len(out) == n:
                break
    return out


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return path
