"""A pretrained model that learns on this machine: SmolLM2-135M-Instruct through SFT-free GRPO on
the built-in arithmetic word problems, scored by the math verifier; held-out accuracy before and
after, per seed.

    python bench/real_model.py [--config configs/smollm2-word-problems.yaml] [--seeds 0 1 2] [key=value ...]

Each seed runs the GRPO stage as a user would (`python -m pipeline.trainers.grpo --config ...
seed=S`), in its own process: greedy held-out accuracy of the starting model on the task's
held-out problems (task.eval_size, 200 by default), the configured GRPO steps, the same accuracy
again. The held-out problems are the same for every seed (the task has its own seed); the run seed
sets the adapters' initialisation and the sampling. Reported per seed: before, after, the gain in
points and the wall seconds of the whole process (model loading and both evaluations included),
with the load average around it (the machine is shared). Target: +15 points in every seed.
Exits 0 either way: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 15.0  # points


def run_seed(config: str, seed: int, overrides: list[str], out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.trainers.grpo", "--config", config, f"seed={seed}",
           f"output_dir={out}", *overrides]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"seed {seed} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = 100 * result["start_accuracy"], 100 * result["final_accuracy"]
    return {"seed": seed, "before": round(before, 1), "after": round(after, 1), "gain": round(after - before, 1),
            "steps": result["steps"], "train_seconds": result["train_seconds"], "wall_s": round(wall, 1),
            "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "smollm2-word-problems.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(REPO / "runs" / "bench-real-model"), help="where the runs go")
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        print(f"--- seed {seed}", file=sys.stderr, flush=True)
        rows.append(run_seed(args.config, seed, args.overrides, Path(args.out) / f"seed-{seed}"))
        r = rows[-1]
        print(f"seed {seed}: {r['before']:.1f}% -> {r['after']:.1f}% ({r['gain']:+.1f} points), "
              f"{r['wall_s'] / 60:.1f} min wall, load {r['load']}", file=sys.stderr, flush=True)

    print()
    print("seed | before | after | gain (points) | wall (min) | load average before, after")
    for r in rows:
        print(f"{r['seed']:4d} | {r['before']:5.1f}% | {r['after']:4.1f}% | {r['gain']:+13.1f} | "
              f"{r['wall_s'] / 60:10.1f} | {r['load']}")
    met = all(r["gain"] >= TARGET for r in rows)
    print(f"target +{TARGET:g} points in every seed: {'met' if met else 'NOT met'}")
    print(json.dumps({"config": args.config, "overrides": args.overrides, "rows": rows, "target_met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
