"""metrics.jsonl (one JSON object per step), plots of it, and the statistics of an RL step's
samples summed over every process.

A resumed run first drops the rows past its checkpoint's step, so the file never holds a step
twice, whatever moment the previous process died at.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics", "plot_metrics", "sample_metrics", "verifier_metrics", "masked_verdicts",
           "refill_metrics", "component_keys", "check_trackers", "tracker_config"]


class MetricsLog:
    """Appends one JSON row per step to metrics.jsonl, and hands the row's numbers to `tracker`
    (accelerate's `log`, which feeds TensorBoard / W&B / trackio / MLflow) when there is one."""

    def __init__(self, path: Path, resume_step: int = 0, enabled: bool = True, tracker=None):
        self.path = Path(path)
        self.enabled = enabled
        self.tracker = tracker
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        plain = {k: _plain(v) for k, v in row.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(plain) + "\n")
        if self.tracker is not None:
            numbers = {k: v for k, v in plain.items()
                       if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.tracker(numbers, step=int(plain["step"]))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow"}


def check_trackers(names: list[str]) -> None:
    """Every tracker in `report_to` must be installed: accelerate would silently drop a missing one."""
    from accelerate.tracking import get_available_trackers

    from errors import ConfigError

    available = {str(t.value if hasattr(t, "value") else t) for t in get_available_trackers()}
    missing = [n for n in names if n not in available]
    if missing:
        packages = " ".join(_TRACKER_PACKAGES.get(n, n) for n in missing)
        raise ConfigError(f"field report_to: {', '.join(missing)} is not installed; pip install {packages} "
                          "(or remove it from report_to)")


def tracker_config(cfg) -> dict[str, Any]:
    """The run config flattened to `section.field` scalars, as trackers store hyperparameters."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value if isinstance(value, (bool, int, float, str)) or value is None else json.dumps(value)

    walk("", cfg.model_dump(mode="json"))
    return flat


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return rows


def plot_metrics(path: Path, out_png: Path, keys: list[str], title: str = "") -> Path | None:
    """One panel per key that the file has, against the step. Returns the PNG path (None if no data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(path)
    series = {k: [(r["step"], r[k]) for r in rows if r.get(k) is not None] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.4), squeeze=False)
    for ax, (key, points) in zip(axes[0], series.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def sample_metrics(acc, collected, keep) -> dict[str, Any]:
    """Reward, accuracy, length and verdict statistics of an RL step's samples (a
    `rollout.collect.Collected`), summed over all processes; `keep` (N,) marks the samples that
    entered the loss (GRPO: in a group with a signal; None: all valid ones)."""
    import torch

    rollouts, verdicts, valid = collected.rollouts, collected.verdicts, collected.valid
    keep = valid if keep is None else keep
    ok_rewards = collected.rewards[valid]
    local = torch.tensor([
        len(verdicts), float(valid.sum()), sum(v.status == "timeout" for v in verdicts),
        sum(v.status == "error" for v in verdicts), float(ok_rewards.sum()), float((ok_rewards**2).sum()),
        float((ok_rewards > 0).sum()), sum(len(c) for c in rollouts.completion_ids), sum(rollouts.truncated),
        float(keep.view(-1, rollouts.group_size).any(dim=1).sum()), len(verdicts) // rollouts.group_size,
    ], dtype=torch.float64)
    n, ok, timeout, error, r_sum, r_sq, correct, length, truncated, kept, groups = (
        acc.reduce(local.to(acc.device), "sum").tolist())
    mean = r_sum / ok if ok else None
    return {
        "reward_mean": mean,
        "reward_std": ((r_sq - ok * mean**2) / (ok - 1)) ** 0.5 if ok > 1 else None,
        "accuracy": correct / ok if ok else None,
        "groups": int(groups),
        "groups_kept": int(kept),
        "completion_len": length / n,
        "truncated_frac": truncated / n,
        "verdict_ok": int(ok),
        "verdict_timeout": int(timeout),
        "verdict_error": int(error),
    }


def verifier_metrics(acc, verdicts, names: list[str], all_names: list[str]) -> dict[str, Any]:
    """Per verifier: verdicts by status, mean reward of ok verdicts, mean latency, and a count per
    flag a verdict carried (`verifier/code/tamper`); per component of a composite, its verdicts by
    status and its mean reward (`verifier/shaped/format/reward_mean`); summed over all processes."""
    import torch

    local = torch.zeros(len(all_names), 5, dtype=torch.float64)  # ok, timeout, error, reward sum, latency sum
    column = {"ok": 0, "timeout": 1, "error": 2}
    flags: dict[str, float] = {}  # counts and sums whose keys are not known in advance
    for verdict, name in zip(verdicts, names):
        row = local[all_names.index(name)]
        row[column[verdict.status]] += 1
        row[3] += verdict.reward if verdict.scored else 0.0
        row[4] += verdict.latency_s
        for flag in verdict.flags:
            flags[f"verifier/{name}/{flag}"] = flags.get(f"verifier/{name}/{flag}", 0) + 1
        for part, v in verdict.parts:
            for key, value in ((v.status, 1), ("reward_sum", v.reward if v.scored else 0.0)):
                flags[f"verifier/{name}/{part}/{key}"] = flags.get(f"verifier/{name}/{part}/{key}", 0) + value
    total = acc.reduce(local.to(acc.device), "sum").cpu()  # every process lists the same verifiers
    stats: dict[str, Any] = {}
    for name, (ok, timeout, error, reward_sum, latency_sum) in zip(all_names, total.tolist()):
        n = ok + timeout + error
        if n:
            stats.update({f"verifier/{name}/ok": int(ok), f"verifier/{name}/timeout": int(timeout),
                          f"verifier/{name}/error": int(error), f"verifier/{name}/latency_s": latency_sum / n,
                          f"verifier/{name}/reward_mean": reward_sum / ok if ok else None})
    for part in _gathered(acc, flags):  # flag names are not known in advance: gather the dicts
        for key, count in part.items():
            stats[key] = stats.get(key, 0) + count
    for key in [k for k in stats if k.endswith("/reward_sum")]:  # a component's sum -> its mean over ok verdicts
        ok = stats.get(key.removesuffix("reward_sum") + "ok", 0)
        stats[key.removesuffix("sum") + "mean"] = stats.pop(key) / ok if ok else None
    return stats


def component_keys(scorer) -> list[str]:
    """The metric keys of each composite component's mean reward, to plot beside the reward."""
    return [f"verifier/{name}/{part}/reward_mean" for name, parts in scorer.components().items() for part in parts]


def refill_metrics(acc, refilled) -> dict[str, Any]:
    """Dynamic sampling's cost and outcome of one step (a `rollout.refill.Refilled`), summed over
    every process: prompts generated for, the extra generation as a share of the step's prompts,
    groups trained on, groups short of the quota (0 unless the cap was reached), refill rounds."""
    import torch

    local = torch.tensor([refilled.prompts_sampled, refilled.quota, refilled.groups_trained, refilled.refills],
                         dtype=torch.float64)
    sampled, quota, trained, refills = acc.reduce(local.to(acc.device), "sum").tolist()
    return {"dynamic/prompts_sampled": int(sampled), "dynamic/extra_generation": (sampled - quota) / quota if quota else 0.0,
            "dynamic/groups_trained": int(trained), "dynamic/groups_short": int(quota - trained),
            "dynamic/refills": int(refills)}


def masked_verdicts(acc, verdicts, names: list[str]) -> list[tuple[str, str, str]]:
    """(verifier, status, reason) of every masked verdict of the step, gathered from all processes
    (the run-health guards judge the whole step, and every process must reach the same decision)."""
    mine = [(name, v.status, v.reason) for v, name in zip(verdicts, names) if not v.scored]
    return [item for part in _gathered(acc, mine) for item in part]


def _gathered(acc, obj: Any) -> list[Any]:
    if acc.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])
