"""Does a format component of a composite reward change what the model writes? GRPO from the SFT
model with the math verifier alone, against math 1.0 + format 0.2, per seed.

    python bench/composite_format.py [--config configs/tiny.yaml] [--seeds 0 1 2] [--steps 200] [--reuse] [key=value ...]

`--reuse` measures the arms' final models of an earlier run of this script (in --out) instead of
training them again.

The format component asks for a canonical integer: the whole completion matches `0|-?[1-9][0-9]*`
(no stray characters, no leading zeros). Measured on the 500 held-out prompts, 8 samples each at
temperature 1, before (the SFT model) and after each arm: the share of samples in that format and
the share that are right; and greedy held-out accuracy (math alone in both arms: eval.verifier).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from _start import REPO, sft_model

CANONICAL = r"0|-?[1-9][0-9]*"
SHAPED = ["task.verifier=shaped", "verifiers.composites={shaped: {math: 1.0, format: 0.2}}",
          f"verifiers.options.format={{pattern: '{CANONICAL}', full_match: true}}", "eval.verifier=math"]


def sampled_format(cfg, model_dir: str, samples: int = 8) -> dict[str, float]:
    """Share of canonical-integer completions and of right ones, over `samples` per held-out prompt."""
    import torch

    from pipeline.data import build_task_data
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import make_engine, sampling_params
    from pipeline.rollout.collect import collect
    from pipeline.scoring import Scorer

    torch.set_num_threads(cfg.threads)
    source = resolve_model(model_dir, cfg.model)
    tokenizer = load_tokenizer(source)
    engine = make_engine(cfg.rollout, tokenizer, model=load_causal_lm(source, cfg.model, tokenizer))
    data = build_task_data(cfg)
    sampling = sampling_params(cfg.rollout)
    c = collect(engine, Scorer(cfg, {"math"}), tokenizer, data.eval_rows, samples,
                type(sampling)(**{**vars(sampling), "seed": 12345}))
    canonical = [bool(re.fullmatch(CANONICAL, t.strip())) for t in c.rollouts.texts]
    return {"format": sum(canonical) / len(canonical), "right": float(c.rewards.mean()),
            "malformed_but_right": sum(r > 0 and not f for r, f in zip(c.rewards.tolist(), canonical)) / len(canonical)}


def reused(cfg, steps: int) -> dict:
    """An arm trained earlier: its final model and held-out accuracy (from its metrics.jsonl)."""
    from pipeline.metrics import read_metrics

    final = cfg.output_path / "grpo" / "final"
    rows = [r for r in read_metrics(cfg.output_path / "grpo" / "metrics.jsonl") if "eval_accuracy" in r]
    if not (final / "model.safetensors").is_file() or not rows or rows[-1]["step"] != steps:
        raise SystemExit(f"--reuse: no finished {steps}-step run in {cfg.output_path / 'grpo'}")
    return {"model": str(final), "final_accuracy": rows[-1]["eval_accuracy"], "train_seconds": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "composite_format"))
    parser.add_argument("--reuse", action="store_true", help="measure the final models already in --out")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from pipeline.config import load_config
    from pipeline.metrics import read_metrics
    from pipeline.trainers.grpo import train_grpo

    table = []
    for seed in args.seeds:
        sft = sft_model(args.config, seed, REPO / "bench" / "out" / f"sft-seed{seed}")
        out = Path(args.out) / f"seed{seed}"
        if not args.reuse:
            shutil.rmtree(out, ignore_errors=True)
        base = [f"seed={seed}", f"grpo.steps={args.steps}", "grpo.eval_every=0", *args.overrides]
        row = {"seed": seed, "sft": sampled_format(load_config(args.config, base), sft)}
        for arm, extra in (("math", []), ("math+format", SHAPED)):
            cfg = load_config(args.config, [*base, *extra, f"output_dir={out / arm}"])
            result = reused(cfg, args.steps) if args.reuse else train_grpo(cfg, init=sft)
            row[arm] = {**sampled_format(cfg, result["model"]), "greedy_accuracy": result["final_accuracy"],
                        "train_seconds": result["train_seconds"]}
        steps = [r for r in read_metrics(out / "math+format" / "grpo" / "metrics.jsonl")
                 if r.get("verifier/shaped/format/reward_mean") is not None]
        row["format_component_first_last"] = [steps[0]["verifier/shaped/format/reward_mean"],
                                              steps[-1]["verifier/shaped/format/reward_mean"]]
        table.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'seed':>4}  {'canonical-integer share of samples':<40} {'right samples':<30} greedy held-out")
    print(f"{'':>4}  {'SFT -> math / math+format':<40} {'SFT -> math / math+format':<30} math / math+format")
    for r in table:
        f = f"{100 * r['sft']['format']:.2f}% -> {100 * r['math']['format']:.2f}% / {100 * r['math+format']['format']:.2f}%"
        a = f"{100 * r['sft']['right']:.1f}% -> {100 * r['math']['right']:.1f}% / {100 * r['math+format']['right']:.1f}%"
        g = f"{100 * r['math']['greedy_accuracy']:.1f}% / {100 * r['math+format']['greedy_accuracy']:.1f}%"
        print(f"{r['seed']:>4}  {f:<40} {a:<30} {g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
