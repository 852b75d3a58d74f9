"""GRPO: for each prompt sample a group of G completions, score each with a verifier, and push up
the completions that beat their group (DeepSeekMath, Shao et al. 2024).

    python -m pipeline.trainers.grpo --config configs/tiny.yaml [--init DIR] [key=value ...]

A step: sample prompts -> G rollouts each -> verifiers -> group-relative advantages (only `ok`
verdicts count; timeouts and errors are masked out, never scored 0) -> `epochs` passes of the
clipped surrogate (+ beta * k3 KL to a frozen reference) -> the rollout engine sees the new weights.
"""

from __future__ import annotations

import copy
import sys
from contextlib import nullcontext
import time
from typing import Any

import torch

from pipeline.config import RunConfig
from pipeline.data import build_task_data
from pipeline.evaluate import heldout_accuracy
from pipeline.losses import group_advantages, grpo_loss
from pipeline.rollout import SamplingParams, make_engine
from pipeline.scoring import Scorer
from pipeline.tokens import PackedBatch, completion_logprobs, encode_prompt, pack
from pipeline.trainers.common import Stopwatch, prepare_training, progress_bar, seed_step, setup_stage, stage_main

__all__ = ["train_grpo", "masked_group_advantages"]


def train_grpo(cfg: RunConfig, init: str | None = None) -> dict[str, Any]:
    # --- set up: policy, frozen reference (only when beta > 0), verifiers, engine, resume --------
    ctx = setup_stage(cfg, "grpo", init)
    acc, tokenizer, g = ctx.accelerator, ctx.tokenizer, cfg.grpo
    data = build_task_data(cfg)
    scorer = Scorer(cfg, data.verifier_names())
    reference = copy.deepcopy(ctx.model).eval().requires_grad_(False) if g.beta > 0 else None

    run = prepare_training(ctx, g, g.steps)
    model, optimizer, scheduler, log = run.model, run.optimizer, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]
    if reference is not None:
        reference = reference.to(acc.device)
    engine = make_engine(cfg.rollout, acc.unwrap_model(model), tokenizer)
    sampling = SamplingParams(cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.max_new_tokens,
                              min_new_tokens=cfg.rollout.min_new_tokens)
    eval_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens

    def evaluate() -> float:
        return heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, eval_tokens, data.system)["accuracy"]

    start_accuracy = run.state.get("start_accuracy")
    if step == 0 and acc.is_main_process:
        start_accuracy = evaluate()
        log.log({"step": 0, "eval_accuracy": start_accuracy})
    watch = Stopwatch()
    prompts_here = list(range(acc.process_index, g.prompts_per_step, acc.num_processes))
    bar = progress_bar(ctx, g.steps, step)
    while step < g.steps and not (g.max_seconds and train_seconds >= g.max_seconds):
        started = time.perf_counter()
        seed_step(cfg.seed, step, acc.process_index)

        # --- roll out: this process's share of the step's prompts, G completions each
        batch_rows = data.rl_batch(step, g.prompts_per_step)
        rows = [batch_rows[i] for i in prompts_here]
        with watch("generate"):
            prompt_ids = [encode_prompt(tokenizer, r.prompt, data.system) for r in rows]
            rollouts = engine.generate(prompt_ids, g.group_size, sampling)

        # --- score: one verdict per completion
        with watch("verify"):
            names = [r.verifier for r in rows for _ in range(g.group_size)]
            verdicts = scorer.score(rollouts.texts, [r.answer for r in rows for _ in range(g.group_size)], names,
                                    [r.prompt for r in rows for _ in range(g.group_size)], data.system)
        rewards = torch.tensor([v.reward for v in verdicts], dtype=torch.float32)
        valid = torch.tensor([v.status == "ok" for v in verdicts])
        advantages, keep = masked_group_advantages(
            rewards, valid, g.group_size, g.advantage_scale, g.drop_equal_groups
        )

        # --- optimise: `epochs` passes over the kept samples, one optimiser step per pass
        with watch("train"):
            kept = keep.nonzero().squeeze(-1).tolist()
            train_stats = _optimise(acc, model, reference, optimizer, rollouts, kept, advantages, cfg, tokenizer.pad_token_id)
        scheduler.step()
        engine.sync_weights(acc.unwrap_model(model))
        step += 1
        train_seconds += time.perf_counter() - started

        # --- log, evaluate, checkpoint
        row = {
            "step": step,
            **_rollout_stats(acc, rewards, valid, keep, rollouts, verdicts),
            **_verifier_stats(acc, verdicts, names, sorted(scorer.verifiers)),
            "lr": scheduler.get_last_lr()[0],
            **train_stats,
            **watch.pop(),
            "train_seconds": round(train_seconds, 3),
        }
        if acc.is_main_process and g.eval_every and step % g.eval_every == 0 and step < g.steps:
            row["eval_accuracy"] = evaluate()
        log.log(row)
        bar.update(1)
        bar.set_postfix(reward=f"{row['reward_mean'] or 0:.3f}", kl=f"{row.get('kl', 0):.4f}", refresh=False)
        if step % g.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds, start_accuracy=start_accuracy)
    bar.close()

    final_accuracy = None
    if acc.is_main_process:
        final_accuracy = evaluate()
        log.log({"step": step, "eval_accuracy": final_accuracy})
    final = run.finish(ctx, step, {"train_seconds": train_seconds, "start_accuracy": start_accuracy},
                       ["reward_mean", "eval_accuracy", "kl", "completion_len"], "GRPO")
    return {"model": str(final), "steps": step, "start_accuracy": start_accuracy,
            "final_accuracy": final_accuracy, "train_seconds": round(train_seconds, 2)}


def masked_group_advantages(
    rewards: torch.Tensor, valid: torch.Tensor, group_size: int, scale: str, drop_equal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantages over the valid members of each group. (N,), (N,) -> (N,), (N,) keep.

    A masked (timeout/error) sample neither gets an advantage nor shifts its group's mean and std.
    A group with fewer than two valid members has no baseline; with `drop_equal`, a group whose
    valid rewards are all equal carries no signal either; their samples are not kept.
    """
    advantages = torch.zeros_like(rewards)
    keep = torch.zeros_like(valid)
    for start in range(0, rewards.numel(), group_size):
        members = torch.arange(start, start + group_size)[valid[start : start + group_size]]
        r = rewards[members]
        if r.numel() < 2 or (drop_equal and bool((r == r[0]).all())):
            continue
        advantages[members] = group_advantages(r, r.numel(), scale=scale)
        keep[members] = True
    return advantages, keep


def _rollout_stats(acc, rewards, valid, keep, rollouts, verdicts) -> dict[str, Any]:
    """Reward, accuracy, length and verdict statistics of the step, summed over all processes."""
    g = rollouts.group_size
    ok_rewards = rewards[valid]
    local = torch.tensor([
        len(verdicts), float(valid.sum()), sum(v.status == "timeout" for v in verdicts),
        sum(v.status == "error" for v in verdicts), float(ok_rewards.sum()), float((ok_rewards**2).sum()),
        float((ok_rewards > 0).sum()), sum(len(c) for c in rollouts.completion_ids), sum(rollouts.truncated),
        float(keep.view(-1, g).any(dim=1).sum()),
    ], dtype=torch.float64)
    n, ok, timeout, error, r_sum, r_sq, correct, length, truncated, kept = acc.reduce(local.to(acc.device), "sum").tolist()
    mean = r_sum / ok if ok else None
    return {
        "reward_mean": mean,
        "reward_std": ((r_sq - ok * mean**2) / (ok - 1)) ** 0.5 if ok > 1 else None,
        "accuracy": correct / ok if ok else None,
        "groups_kept": int(kept),
        "completion_len": length / n,
        "truncated_frac": truncated / n,
        "verdict_ok": int(ok),
        "verdict_timeout": int(timeout),
        "verdict_error": int(error),
    }


def _verifier_stats(acc, verdicts, names: list[str], all_names: list[str]) -> dict[str, Any]:
    """Per verifier: verdicts by status, mean reward of ok verdicts, mean latency; summed over all
    processes (every process lists the same verifiers, so the tensors line up)."""
    local = torch.zeros(len(all_names), 5, dtype=torch.float64)  # ok, timeout, error, reward sum, latency sum
    column = {"ok": 0, "timeout": 1, "error": 2}
    for verdict, name in zip(verdicts, names):
        row = local[all_names.index(name)]
        row[column[verdict.status]] += 1
        row[3] += verdict.reward if verdict.scored else 0.0
        row[4] += verdict.latency_s
    total = acc.reduce(local.to(acc.device), "sum").cpu()
    stats: dict[str, Any] = {}
    for name, (ok, timeout, error, reward_sum, latency_sum) in zip(all_names, total.tolist()):
        n = ok + timeout + error
        if n:
            stats.update({f"verifier/{name}/ok": int(ok), f"verifier/{name}/timeout": int(timeout),
                          f"verifier/{name}/error": int(error), f"verifier/{name}/latency_s": latency_sum / n,
                          f"verifier/{name}/reward_mean": reward_sum / ok if ok else None})
    return stats


def _optimise(acc, model, reference, optimizer, rollouts, kept: list[int], advantages: torch.Tensor,
              cfg: RunConfig, pad_id: int) -> dict[str, float]:
    g = cfg.grpo
    if not kept and acc.num_processes == 1:
        return {}
    # Every process must run the same number of backward passes (DDP syncs on each), so the
    # micro-batch count and the loss denominators are agreed across processes first.
    counts = torch.tensor([len(kept), sum(len(rollouts.completion_ids[i]) for i in kept)], device=acc.device)
    total_seqs, total_tokens = (int(x) for x in acc.reduce(counts, reduction="sum"))
    if total_seqs == 0:
        return {}
    n_micro = max(1, -(-len(kept) // g.micro_batch_size))
    n_micro = int(acc.gather(torch.tensor([n_micro], device=acc.device)).max())
    max_tokens = cfg.rollout.max_new_tokens
    temperature = cfg.rollout.temperature

    micro_batches = []
    for m in range(n_micro):
        chunk = kept[m * g.micro_batch_size : (m + 1) * g.micro_batch_size] or kept[:1]
        weight_zero = not kept[m * g.micro_batch_size : (m + 1) * g.micro_batch_size]
        packed = pack([rollouts.prompt_ids[i] for i in chunk], [rollouts.completion_ids[i] for i in chunk], pad_id)
        old = _pad([rollouts.logprobs[i] for i in chunk], packed.completion_ids.shape[1])
        packed, old = packed.to(acc.device), old.to(acc.device)
        ref = None
        if reference is not None:
            with torch.inference_mode():
                ref = completion_logprobs(reference, packed, temperature).clone()
        micro_batches.append((packed, old, ref, advantages[chunk].to(acc.device), weight_zero))

    sums = dict.fromkeys(_LOSS_STATS, 0.0)
    for _ in range(g.epochs):
        for index, (packed, old, ref, adv, weight_zero) in enumerate(micro_batches):
            logps = completion_logprobs(model, packed, temperature)
            loss, stats = grpo_loss(logps, old, ref, adv, packed.completion_mask, clip_low=g.clip_low,
                                    clip_high=g.clip_high, beta=g.beta, aggregation=g.aggregation, max_tokens=max_tokens)
            share = _share(packed, g.aggregation, total_seqs, total_tokens)
            weight = 0.0 if weight_zero else share * acc.num_processes
            context = acc.no_sync(model) if index < len(micro_batches) - 1 else nullcontext()
            with context:
                acc.backward(loss * weight)
            if not weight_zero:
                for k, v in {"loss": loss, **stats}.items():
                    sums[k] += v.detach().item() * share
        grad_norm = acc.clip_grad_norm_(model.parameters(), g.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    # Each process holds its share of the batch-wide statistic: their sum is the batch's.
    totals = acc.reduce(torch.tensor([sums[k] for k in _LOSS_STATS], device=acc.device), "sum").tolist()
    return {k: v / g.epochs for k, v in zip(_LOSS_STATS, totals)} | {"grad_norm": float(grad_norm)}


_LOSS_STATS = ("loss", "pg_loss", "kl", "clip_fraction", "ratio_mean")


def _share(packed: PackedBatch, aggregation: str, total_seqs: int, total_tokens: int) -> float:
    """This micro-batch's weight, so that summing weighted micro-batch losses gives the loss of the
    whole batch: token_mean weighs by tokens, sequence_mean and constant by sequences."""
    if aggregation == "token_mean":
        return float(packed.completion_mask.sum()) / total_tokens
    return packed.completion_ids.shape[0] / total_seqs


def _pad(rows: list[list[float]], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def main(argv: list[str] | None = None) -> int:
    return stage_main("grpo", train_grpo, argv)


if __name__ == "__main__":
    sys.exit(main())
