"""The RLHF stage, measured on the built-in preference task with the tiny model, per seed:

1. reward model: held-out pairwise accuracy (1,200 pairs of 200 held-out prompts);
2. PPO: mean reward-model score of samples on the task's held-out prompts, from the SFT policy
   (before PPO) and from the PPO policy, and the KL to the reference per sequence along the run
   (both per step in <out>/seed<N>/ptx_off/ppo/metrics.jsonl and plotted in metrics.png);
3. DPO: held-out preference accuracy of its implicit reward beta * log(pi / pi_ref);
4. PPO-ptx: the drop in mean per-token log-likelihood of the SFT demonstrations over the PPO run,
   with ptx off and on (the same run otherwise); ptx trains on those demonstrations, so the drop
   on held-out demonstrations (the task's evaluation problems, answered correctly) is shown too.

    python bench/rlhf.py [--config configs/rlhf-tiny.yaml] [--seeds 0 1 2] [key=value ...]

Every stage runs as the round flow runs it: `python -m pipeline.trainers.<stage> --config FILE
--init DIR`, its result read from the JSON line it prints last. Targets: RM accuracy >= 90%,
PPO score above the SFT policy's with the KL bounded, DPO accuracy >= 80%, a smaller SFT
log-likelihood drop with ptx than without.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import load_config  # noqa: E402
from pipeline.metrics import read_metrics  # noqa: E402


def stage(name: str, config: str, overrides: list[str], init: str | None = None) -> dict:
    """One stage in its own process, exactly as the round flow launches it."""
    cmd = [sys.executable, "-m", f"pipeline.trainers.{name}", "--config", config, *(["--init", init] if init else []),
           *overrides]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"  {name}: {result['wall_seconds']} s", file=sys.stderr, flush=True)
    return result


def run_seed(config: str, seed: int, overrides: list[str], out: Path, ptx_coef: float | None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    base = [f"seed={seed}", *overrides]
    ptx_coef = load_config(config, base).ppo.ptx_coef if ptx_coef is None else ptx_coef
    if ptx_coef <= 0:
        raise SystemExit("the PPO-ptx comparison needs ppo.ptx_coef > 0 (or --ptx-coef)")
    sft = stage("sft", config, [*base, f"output_dir={out}"])
    rm = stage("reward_model", config, [*base, f"output_dir={out}"], init=sft["model"])
    ppo = {}
    for variant, coef in (("ptx_off", 0.0), ("ptx_on", ptx_coef)):
        ppo[variant] = stage("ppo", config, [*base, f"output_dir={out / variant}", f"reward_model.path={rm['reward_model']}",
                                             f"ppo.ptx_coef={coef}"], init=sft["model"])
    dpo = stage("dpo", config, [*base, f"output_dir={out}"], init=sft["model"])

    steps = [r for r in read_metrics(out / "ptx_off" / "ppo" / "metrics.jsonl") if "kl" in r]
    plain, mixed = ppo["ptx_off"], ppo["ptx_on"]
    return {
        "seed": seed,
        "rm_accuracy": rm["eval_accuracy"],
        "sft_score": plain["start"]["eval_score"],
        "ppo_score": plain["final"]["eval_score"],
        "kl_last10": statistics.mean(r["kl"] for r in steps[-10:]),
        "kl_max": max(r["kl"] for r in steps),
        "sft_accuracy": plain["start"]["eval_accuracy"],
        "ppo_accuracy": plain["final"]["eval_accuracy"],
        "dpo_accuracy": dpo["eval_accuracy"],
        "ll_drop_no_ptx": plain["start"]["sft_logprob"] - plain["final"]["sft_logprob"],
        "ll_drop_ptx": mixed["start"]["sft_logprob"] - mixed["final"]["sft_logprob"],
        "heldout_drop_no_ptx": plain["start"]["heldout_logprob"] - plain["final"]["heldout_logprob"],
        "heldout_drop_ptx": mixed["start"]["heldout_logprob"] - mixed["final"]["heldout_logprob"],
        "ptx_score": mixed["final"]["eval_score"],
        "seconds": {"sft": sft["wall_seconds"], "reward_model": rm["wall_seconds"], "ppo": plain["wall_seconds"],
                    "ppo_ptx": mixed["wall_seconds"], "dpo": dpo["wall_seconds"]},
    }


COLUMNS = [
    ("seed", "seed", "{}"),
    ("rm_accuracy", "RM acc", "{:.1%}"),
    ("sft_score", "score SFT", "{:.3f}"),
    ("ppo_score", "score PPO", "{:.3f}"),
    ("kl_last10", "KL (last 10)", "{:.3f}"),
    ("kl_max", "KL max", "{:.3f}"),
    ("sft_accuracy", "task acc SFT", "{:.1%}"),
    ("ppo_accuracy", "task acc PPO", "{:.1%}"),
    ("dpo_accuracy", "DPO acc", "{:.1%}"),
    ("ll_drop_no_ptx", "SFT-LL drop", "{:.4f}"),
    ("ll_drop_ptx", "drop w/ ptx", "{:.4f}"),
    ("heldout_drop_no_ptx", "held-out LL drop", "{:.4f}"),
    ("heldout_drop_ptx", "drop w/ ptx", "{:.4f}"),
    ("ptx_score", "score PPO-ptx", "{:.3f}"),
]


def table(rows: list[dict]) -> str:
    lines = [" | ".join(title for _, title, _ in COLUMNS), " | ".join("---" for _ in COLUMNS)]
    for row in rows:
        lines.append(" | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS))
    if len(rows) > 1:
        means = [fmt.format(statistics.mean(r[key] for r in rows)) if key != "seed" else "mean"
                 for key, _, fmt in COLUMNS]
        lines.append(" | ".join(means))
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        out.append(
            f"seed {r['seed']}: RM >= 90%: {r['rm_accuracy'] >= 0.9}; PPO score > SFT score: "
            f"{r['ppo_score'] > r['sft_score']} (+{r['ppo_score'] - r['sft_score']:.3f}); DPO >= 80%: "
            f"{r['dpo_accuracy'] >= 0.8}; ptx drop < plain drop: {r['ll_drop_ptx'] < r['ll_drop_no_ptx']}"
        )
    return out


def plot(rows: list[dict], out: Path) -> Path:
    """Mean RM score of the step's samples and KL to the reference, per PPO step, every seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in rows:
        for variant, style in (("ptx_off", "-"), ("ptx_on", ":")):
            steps = [m for m in read_metrics(out / f"seed{r['seed']}" / variant / "ppo" / "metrics.jsonl") if "kl" in m]
            label = f"seed {r['seed']}{' ptx' if variant == 'ptx_on' else ''}"
            axes[0].plot([m["step"] for m in steps], [m["score_mean"] for m in steps], style, label=label)
            axes[1].plot([m["step"] for m in steps], [m["kl"] for m in steps], style, label=label)
    axes[0].set_title("mean RM score of the step's samples")
    axes[1].set_title("KL(policy || reference) per sequence")
    for ax in axes:
        ax.set_xlabel("PPO step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = out / "ppo_score_kl.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "rlhf-tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "rlhf"))
    parser.add_argument("--ptx-coef", type=float, default=None, help="ptx_coef of the PPO-ptx run (default: the config's ppo.ptx_coef)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides for every stage")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        print(f"seed {seed}", file=sys.stderr, flush=True)
        rows.append(run_seed(args.config, seed, args.overrides, out / f"seed{seed}", args.ptx_coef))
        (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    print("\n".join(verdicts(rows)))
    print(f"plot: {plot(rows, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
