"""GRPO on the tiny task with each rollout engine, from one SFT checkpoint, in one invocation.

    python bench/engines_learning.py [--engines hf,vllm,vllm_server] [--seed 0] [--out DIR] [ARGS...]

The model is the tiny preset with 2 heads of width 32 (vLLM's CPU attention needs a head size of
at least 32; the default preset has 4 of 16). SFT runs once (configs/tiny.yaml), then GRPO runs
from its final model with each engine and otherwise the same config: `hf` (transformers generate
on the policy itself), `vllm` (vLLM in the trainer's process: run from the vLLM virtualenv, which
`make vllm` builds) and `vllm_server` (a vLLM server started by the stage, HTTP, weights through a
directory). The vLLM runs use the default correction (truncated importance weights, C = 2) and
the arrival check after every sync. Extra ARGS (`grpo.steps=200`) go to every GRPO run.

Printed: held-out accuracy before and after GRPO, GRPO's training seconds, and for the vLLM
engines the mean mismatch KL and |delta log p| between sampler and trainer, the share of tokens the
bound changed, the largest probe difference after a sync, and the seconds spent syncing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tiny.yaml"
SHAPE = ["model.tiny.num_heads=2"]


def run_stage(python: str, module: str, args: list[str]) -> dict:
    cmd = [python, "-m", module, "--config", str(CONFIG), *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{module} exited with {proc.returncode}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def summary(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "verdict_ok" in r]

    def mean(key):
        values = [r[key] for r in steps if r.get(key) is not None]
        return statistics.fmean(values) if values else None

    probe = [r["sync_probe_diff"] for r in steps if "sync_probe_diff" in r]
    return {"mismatch_kl": mean("mismatch_kl"), "mismatch_abs": mean("mismatch_abs"),
            "is_clipped_fraction": mean("is_clipped_fraction"), "probe_max": max(probe) if probe else None,
            "sync_s": mean("time_sync_s"), "generate_s": mean("time_generate_s"), "train_s": mean("time_train_s")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="hf,vllm,vllm_server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("args", nargs="*", help="overrides for every GRPO run")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="engines-learning-"))
    vllm_python = os.environ.get("RLVR_VLLM_PYTHON") or str(REPO / ".venv-vllm" / "bin" / "python")
    common = [*SHAPE, f"seed={args.seed}"]

    sft = run_stage(sys.executable, "pipeline.trainers.sft", [*common, f"output_dir={out / 'sft'}"])
    results = {}
    for engine in args.engines.split(","):
        python = vllm_python if engine == "vllm" else sys.executable
        run = run_stage(python, "pipeline.trainers.grpo",
                        ["--init", sft["model"], *common, f"output_dir={out / engine}", f"rollout.backend={engine}",
                         *args.args])
        results[engine] = {"before": run["start_accuracy"], "after": run["final_accuracy"],
                           "train_seconds": run["train_seconds"], **summary(out / engine)}

    print(f"\nGRPO on the tiny task (2 heads of 32), seed {args.seed}, from {sft['model']}")
    print("| engine | before | after | GRPO seconds | mismatch KL | mean abs dlogp | clipped | probe max | sync s/step |")
    print("|---|---|---|---|---|---|---|---|---|")

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    for engine, r in results.items():
        print(f"| {engine} | {r['before']:.1%} | {r['after']:.1%} | {r['train_seconds']:.0f} | "
              f"{fmt(r['mismatch_kl'], '.2e')} | {fmt(r['mismatch_abs'], '.2e')} | {fmt(r['is_clipped_fraction'], '.4f')} | "
              f"{fmt(r['probe_max'], '.2e')} | {fmt(r['sync_s'], '.3f')} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
