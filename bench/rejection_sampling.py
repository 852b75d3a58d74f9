"""Rejection sampling -> SFT rounds (expert iteration) against GRPO, for GRPO's time: held-out
accuracy per seed.

    python bench/rejection_sampling.py [--config configs/tiny.yaml] [--seeds 0 1 2] [--rounds 8]
                                       [--grpo-steps N] [--reuse-grpo] [key=value ...]

`--reuse-grpo` takes the GRPO arm of an earlier run of this script (in --out) instead of training it
again.

Both start from the same SFT model (the config's SFT stage, per seed):

- GRPO: the config's GRPO stage (configs/tiny.yaml: 800 steps of 128 prompts x 4; `--grpo-steps`
  for fewer), its training seconds (sampling, scoring, updates) are the budget;
- rejection sampling: a campaign whose rounds are rejection_sampling -> sft -> evaluate, each from
  the previous round's best: 8,192 fresh prompts, 8 samples each, the first correct one (math
  verifier) kept as a demonstration, then 200 SFT steps of 64 on them (the `key=value` overrides
  change the rounds, e.g. rejection_sampling.prompts=2048 sft.steps=100). Its accuracy at GRPO's
  budget is that of the last round whose cumulative sampling, scoring and training seconds fit in it.

Prints one line per seed, then a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _start import REPO, run_campaign, sft_model

ROUNDS = ["stages=[rejection_sampling,sft,evaluate]", "rejection_sampling.prompts=8192",
          "rejection_sampling.samples_per_prompt=8", "rejection_sampling.threshold=1.0", "rejection_sampling.keep=1",
          "sft.steps=200", "sft.lr=5e-4", "sft.batch_size=64", "sft.micro_batch_size=64", "sft.warmup_steps=0",
          "sft.checkpoint_every=100000"]


def reused_grpo(cfg) -> dict:
    """A GRPO arm trained earlier: its start and final held-out accuracy and training seconds."""
    from pipeline.metrics import read_metrics

    rows = read_metrics(cfg.output_path / "grpo" / "metrics.jsonl")
    evals = [r for r in rows if "eval_accuracy" in r]
    if not evals or evals[-1]["step"] != cfg.grpo.steps:
        raise SystemExit(f"--reuse-grpo: no finished {cfg.grpo.steps}-step run in {cfg.output_path / 'grpo'}")
    return {"start_accuracy": evals[0]["eval_accuracy"], "final_accuracy": evals[-1]["eval_accuracy"],
            "train_seconds": [r for r in rows if "train_seconds" in r][-1]["train_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--grpo-steps", type=int, default=None, help="GRPO steps (default: the config's)")
    parser.add_argument("--reuse-grpo", action="store_true", help="take the GRPO arm already in --out")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "rejection_sampling"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from pipeline.config import load_config
    from pipeline.trainers.grpo import train_grpo

    table = []
    for seed in args.seeds:
        sft = sft_model(args.config, seed, REPO / "bench" / "out" / f"sft-seed{seed}")
        out = Path(args.out) / f"seed{seed}"
        steps = [f"grpo.steps={args.grpo_steps}"] if args.grpo_steps else []
        grpo_cfg = load_config(args.config, [f"seed={seed}", *steps, f"output_dir={out / 'grpo'}"])
        if args.reuse_grpo:
            shutil.rmtree(out / "rs", ignore_errors=True)
            grpo = reused_grpo(grpo_cfg)
        else:
            shutil.rmtree(out, ignore_errors=True)
            grpo = train_grpo(grpo_cfg, init=sft)
        rounds = run_campaign(args.config, [f"seed={seed}", *ROUNDS, *args.overrides, f"output_dir={out / 'rs'}"],
                              args.rounds, sft)
        cumulative, within = 0.0, None
        rows = []
        for r in rounds:
            cumulative += r["stages"]["rejection_sampling"]["generation_seconds"] + r["stages"]["sft"]["train_seconds"]
            rows.append({"round": r["round"], "accuracy": r["accuracy"], "seconds": round(cumulative, 1),
                         "demonstrations": r["stages"]["rejection_sampling"]["rows"]})
            if cumulative <= grpo["train_seconds"]:
                within = r["accuracy"]
        row = {"seed": seed, "sft": grpo["start_accuracy"], "grpo": grpo["final_accuracy"],
               "grpo_seconds": grpo["train_seconds"], "rs_at_budget": within, "rs_rounds": rows}
        table.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'seed':>4} {'SFT':>6} {'GRPO':>6} {'GRPO s':>7} {'RS->SFT at that time':>21}   rounds: accuracy (cumulative s)")
    for r in table:
        rounds = "  ".join(f"{100 * x['accuracy']:.1f} ({x['seconds']:.0f})" for x in r["rs_rounds"])
        at = "n/a" if r["rs_at_budget"] is None else f"{100 * r['rs_at_budget']:.1f}%"
        print(f"{r['seed']:>4} {100 * r['sft']:5.1f}% {100 * r['grpo']:5.1f}% {r['grpo_seconds']:7.0f} {at:>21}   {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
