"""Every benchmark in turn (``make bench``), one at a time so that they do not compete.

    python bench/run_all.py [--quick] [--only scorer,e2e,memory,...]

``--quick`` shrinks every run to a smoke test (minutes, figures meaningless); results go to
``bench/results/*.json`` either way (quick ones with a ``quick_`` prefix). The full set takes
about 1.5-2 hours on 2 busy cores, most of it the memory run (500k records).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL: dict[str, list[str]] = {
    "scorer": ["bench_scorer.py"],
    "tuning": ["bench_tuning.py"],
    "int8_batching": ["bench_int8_batching.py"],
    "e2e": ["bench_e2e.py"],
    "profile": ["bench_profile.py"],
    "scaleout": ["bench_scaleout.py"],
    "memory": ["bench_memory.py"],
}
QUICK: dict[str, list[str]] = {
    "scorer": ["bench_scorer.py", "--n", "64", "--naive-n", "32", "--naive-probe", "16",
               "--rounds", "1"],
    "tuning": ["bench_tuning.py", "--n", "128", "--rounds", "1"],
    "int8_batching": ["bench_int8_batching.py", "--sizes", "1,64", "--seeds", "1", "--rounds",
                      "1", "--n", "64"],
    "e2e": ["bench_e2e.py", "--n", "1200", "--latency-s", "3"],
    "profile": ["bench_profile.py", "--n", "1200"],
    "scaleout": ["bench_scaleout.py", "--n", "1200", "--workers", "1,2"],
    "memory": ["bench_memory.py", "--checkpoints", "500,1000,2000"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(FULL))
    args = ap.parse_args()
    plan = QUICK if args.quick else FULL
    failed = []
    for name in args.only.split(","):
        cmd = [sys.executable, str(HERE / plan[name][0]), *plan[name][1:]]
        if args.quick:
            cmd += ["--name", f"quick_{name}"]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd, cwd=HERE.parent).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - t0:.0f}s", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
