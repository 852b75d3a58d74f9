"""Dynamic sampling with refill (DAPO) against GRPO's plain batches: groups trained per step, the
extra generation it costs, and held-out accuracy, per seed.

    python bench/dynamic_sampling.py [--config configs/tiny.yaml] [--seeds 0] [--steps 200] [--cap 4] [key=value ...]

Both arms run the config's GRPO from the SFT model for the same number of steps. The plain arm
trains on the groups of its 128 prompts that have a signal (the others are dropped, so the batch
shrinks); the dynamic arm refills to 128 groups with a signal every step, sampling at most
`cap` x 128 extra prompts. Reported from metrics.jsonl: groups trained per step (min / mean),
steps on a full batch, extra prompts sampled per step (mean), seconds per step (generation,
training), and greedy held-out accuracy at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _start import REPO, sft_model


def summary(rows: list[dict], prompts: int, result: dict) -> dict:
    steps = [r for r in rows if "verdict_ok" in r]
    trained = [r.get("dynamic/groups_trained", r["groups_kept"]) for r in steps]
    n = len(steps)
    return {"steps": n, "groups_trained_min": min(trained), "groups_trained_mean": round(sum(trained) / n, 1),
            "full_batch_steps": sum(t == prompts for t in trained),
            "extra_generation_mean": round(sum(r.get("dynamic/extra_generation", 0.0) for r in steps) / n, 3),
            "generate_s_per_step": round(sum(r.get("time_generate_s", 0.0) for r in steps) / n, 3),
            "train_s_per_step": round(sum(r.get("time_train_s", 0.0) for r in steps) / n, 3),
            "accuracy": result["final_accuracy"], "train_seconds": result["train_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cap", type=float, default=4.0)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "dynamic_sampling"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from pipeline.config import load_config
    from pipeline.metrics import read_metrics
    from pipeline.trainers.grpo import train_grpo

    table = []
    for seed in args.seeds:
        sft = sft_model(args.config, seed, REPO / "bench" / "out" / f"sft-seed{seed}")
        out = Path(args.out) / f"seed{seed}"
        shutil.rmtree(out, ignore_errors=True)
        row = {"seed": seed}
        for arm, extra in (("plain", []), ("dynamic", ["grpo.dynamic_sampling=true", f"grpo.max_extra_prompts={args.cap}"])):
            cfg = load_config(args.config, [f"seed={seed}", f"grpo.steps={args.steps}", "grpo.eval_every=0",
                                            *extra, *args.overrides, f"output_dir={out / arm}"])
            result = train_grpo(cfg, init=sft)
            row[arm] = summary(read_metrics(out / arm / "grpo" / "metrics.jsonl"), cfg.grpo.prompts_per_step, result)
        table.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'seed':>4} {'arm':<8} {'groups/step min-mean':>21} {'full steps':>11} {'extra gen':>10} "
          f"{'gen s/step':>11} {'train s/step':>13} {'held-out':>9}")
    for r in table:
        for arm in ("plain", "dynamic"):
            s = r[arm]
            print(f"{r['seed']:>4} {arm:<8} {s['groups_trained_min']:>10} - {s['groups_trained_mean']:<8} "
                  f"{s['full_batch_steps']:>5}/{s['steps']:<5} {s['extra_generation_mean']:>9.2f}x "
                  f"{s['generate_s_per_step']:>11.3f} {s['train_s_per_step']:>13.3f} {100 * s['accuracy']:>8.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
