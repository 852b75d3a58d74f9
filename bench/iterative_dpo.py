"""Iterative DPO as Llama 3's rounds run it, against offline DPO on the fixed preference set for
the same time: held-out accuracy after each round, per seed.

    python bench/iterative_dpo.py [--config configs/tiny.yaml] [--seeds 0 1 2] [--rounds 3] [key=value ...]

Both arms start from the same SFT model (the config's SFT stage, per seed) and run as campaigns
(the real flow: each round from the previous round's best model, its stages as subprocesses):

- iterative: each round generate_preferences -> dpo -> evaluate: 8,192 fresh prompts, 8 samples
  each from the round's starting model, scored by the math verifier, ranked (ties unordered);
  DPO with RPO's NLL term on them;
- offline: each round dpo -> evaluate on the built-in preference set (2,000 labelled prompts,
  the same every round), each round's DPO stopped after the mean seconds an iterative round spent
  sampling, scoring and training (model loading and evaluation are not counted for either).

Prints one line per round and arm, then a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _start import REPO, run_campaign, sft_model

DPO = ["dpo.lr=5e-4", "dpo.beta=0.1", "dpo.nll_coef=1.0", "dpo.batch_size=64", "dpo.eval_every=0",
       "dpo.checkpoint_every=100000"]
ITERATIVE = ["stages=[generate_preferences,dpo,evaluate]", "generate_preferences.prompts=8192",
             "generate_preferences.samples_per_prompt=8", "generate_preferences.pairs=ranking", "dpo.steps=200", *DPO]
OFFLINE = ["stages=[dpo,evaluate]", "dpo.steps=1000000", *DPO]


def round_seconds(stages: dict) -> float:
    """Sampling, scoring and training seconds of a round (no loading, no evaluation)."""
    return stages.get("generate_preferences", {}).get("generation_seconds", 0.0) + stages["dpo"]["train_seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "iterative_dpo"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from pipeline.config import load_config
    from pipeline.evaluate import run_evaluate

    table = []
    for seed in args.seeds:
        base = REPO / "bench" / "out" / f"sft-seed{seed}"
        sft = sft_model(args.config, seed, base)
        start = run_evaluate(load_config(args.config, [f"seed={seed}", f"output_dir={base}"]), sft)["model"]["accuracy"]
        out = {arm: Path(args.out) / f"seed{seed}" / arm for arm in ("iterative", "offline")}
        for path in out.values():
            shutil.rmtree(path, ignore_errors=True)
        iterative = run_campaign(args.config, [f"seed={seed}", *ITERATIVE, *args.overrides,
                                               f"output_dir={out['iterative']}"], args.rounds, sft)
        seconds = [round_seconds(r["stages"]) for r in iterative]
        budget = sum(seconds) / len(seconds)
        offline = run_campaign(args.config, [f"seed={seed}", *OFFLINE, *args.overrides, f"dpo.max_seconds={budget}",
                                             f"output_dir={out['offline']}"], args.rounds, sft)
        row = {"seed": seed, "sft": start,
               "iterative": [r["accuracy"] for r in iterative], "iterative_seconds": [round(s, 1) for s in seconds],
               "pairs": [r["stages"]["generate_preferences"]["pairs"] for r in iterative],
               "offline": [r["accuracy"] for r in offline],
               "offline_seconds": [round(round_seconds(r["stages"]), 1) for r in offline],
               "offline_steps": [r["stages"]["dpo"]["steps"] for r in offline]}
        table.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'seed':>4} {'SFT':>6}  {'iterative DPO, rounds 1..':<28} {'offline DPO, rounds 1..':<28} seconds/round (it / off)")
    for r in table:
        it = " ".join(f"{100 * a:5.1f}" for a in r["iterative"])
        off = " ".join(f"{100 * a:5.1f}" for a in r["offline"])
        print(f"{r['seed']:>4} {100 * r['sft']:5.1f}%  {it:<28} {off:<28} "
              f"{sum(r['iterative_seconds']) / len(r['iterative_seconds']):.0f} / "
              f"{sum(r['offline_seconds']) / len(r['offline_seconds']):.0f}")
    rising = all(len(r["iterative"]) == args.rounds and all(b > a for a, b in zip([r["sft"], *r["iterative"]], r["iterative"]))
                 for r in table)
    print(f"\niterative DPO rose round over round in every seed: {'yes' if rising else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
