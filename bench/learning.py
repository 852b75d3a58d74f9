"""What RL adds, measured: per seed, held-out accuracy after SFT, after GRPO, and after the control
of continuing SFT on the same labelled set for the same wall time as GRPO took.

    python bench/learning.py [--config configs/tiny.yaml] [--seeds 0 1 2] [key=value ...]

SFT sees only the task's fixed demonstrations (task.sft_size); GRPO draws fresh prompts whose
answers only the verifier sees. The control starts from the same SFT checkpoint, with a fresh
optimiser as GRPO has, and trains until it has used GRPO's training seconds (generation,
verification and updates; held-out evaluations are not counted for either). Targets: GRPO at
least +20 points over SFT and at least +10 over the control, in every seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import load_config  # noqa: E402


def run_seed(config: str, seed: int, overrides: list[str], out: Path) -> dict:
    from pipeline.evaluate import run_evaluate
    from pipeline.trainers.grpo import train_grpo
    from pipeline.trainers.sft import train_sft

    shutil.rmtree(out, ignore_errors=True)
    base = [f"seed={seed}", *overrides]
    cfg = load_config(config, [*base, f"output_dir={out}"])
    started = time.perf_counter()
    sft = train_sft(cfg)
    sft_seconds = time.perf_counter() - started
    grpo = train_grpo(cfg, init=sft["model"])
    budget = grpo["train_seconds"]
    control_cfg = load_config(
        config,
        [*base, f"output_dir={out / 'control'}", f"sft.max_seconds={budget}", "sft.steps=1000000",
         "sft.checkpoint_every=1000000", "sft.eval_every=0", "sft.warmup_steps=0"],
    )
    control = train_sft(control_cfg, init=sft["model"])
    accuracy = run_evaluate(cfg, {"sft": sft["model"], "grpo": grpo["model"], "control": control["model"]})
    return {
        "seed": seed,
        "sft": accuracy["sft"]["accuracy"],
        "grpo": accuracy["grpo"]["accuracy"],
        "control": accuracy["control"]["accuracy"],
        "sft_seconds": round(sft_seconds, 1),
        "grpo_seconds": budget,
        "grpo_steps": grpo["steps"],
        "control_seconds": control["train_seconds"],
        "control_steps": control["steps"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "learning"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        row = run_seed(args.config, seed, args.overrides, Path(args.out) / f"seed{seed}")
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"{'seed':>4} {'SFT':>7} {'GRPO':>7} {'control':>8} {'GRPO-SFT':>9} {'GRPO-control':>13}  GRPO s / steps   control s / steps")
    passed = True
    for r in rows:
        gain, edge = 100 * (r["grpo"] - r["sft"]), 100 * (r["grpo"] - r["control"])
        passed &= gain >= 20 and edge >= 10
        print(f"{r['seed']:>4} {100 * r['sft']:>6.1f}% {100 * r['grpo']:>6.1f}% {100 * r['control']:>7.1f}% "
              f"{gain:>+8.1f} {edge:>+12.1f}   {r['grpo_seconds']:>6.1f} / {r['grpo_steps']:<5} "
              f"{r['control_seconds']:>8.1f} / {r['control_steps']}")
    print(f"\ntargets (GRPO >= SFT + 20 and >= control + 10 in every seed): {'met' if passed else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
