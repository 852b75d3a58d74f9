"""GRPO: for each prompt sample a group of G completions, score each with a verifier, and push up
the completions that beat their group (DeepSeekMath, Shao et al. 2024).

    python -m pipeline.trainers.grpo --config configs/tiny.yaml [--init DIR] [key=value ...]

A step: sample prompts -> G rollouts each -> verifiers -> group-relative advantages (only `ok`
verdicts count; timeouts and errors are masked out, never scored 0) -> `epochs` passes of the
clipped surrogate (+ beta * k3 KL to a frozen reference) -> the rollout engine sees the new weights.
With `dynamic_sampling`, groups without a signal are replaced by groups of more prompts (DAPO).
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Any, Mapping

import torch

from pipeline.config import GRPOConfig, RunConfig
from pipeline.data import build_task_data
from pipeline.evaluate import heldout_accuracy
from pipeline.forward import completion_logprobs, grouped_completion_logprobs, vocabulary_fingerprint
from pipeline.losses import grpo_loss, importance_weights, masked_group_advantages
from pipeline.metrics import component_keys, masked_verdicts, refill_metrics, sample_metrics, verifier_metrics
from pipeline.models import frozen_reference
from pipeline.rollout import sampling_params
from pipeline.rollout.collect import collect
from pipeline.rollout.refill import collect_with_refill
from pipeline.scoring import Scorer
from pipeline.stages import stage_main
from pipeline.tokens import GroupedBatch, PackedBatch, encode_prompt, pack, pack_groups, pad_rows
from pipeline.trainers.common import Stopwatch, evaluates_here, prepare_training, progress_bar, seed_step, setup_stage
from pipeline.trainers.common import start_engine, sync_engine

__all__ = ["train_grpo"]


def train_grpo(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: policy, frozen reference (only when beta > 0), verifiers, engine, resume --------
    ctx = setup_stage(cfg, "grpo", init)
    acc, tokenizer, g = ctx.accelerator, ctx.tokenizer, cfg.grpo
    data = build_task_data(cfg)
    scorer = Scorer.for_task(cfg, data)
    reference = frozen_reference(ctx.model) if g.beta > 0 else None

    run = prepare_training(ctx, g, g.steps)
    model, optimizer, scheduler, log = run.model, run.optimizer, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]
    if reference is not None:
        reference = reference.to(acc.device)
    engine, check, correction = start_engine(ctx, model, encode_prompt(tokenizer, data.eval_rows[0].prompt, data.system))
    sampling = sampling_params(cfg.rollout)
    vocabulary = vocabulary_fingerprint(tokenizer)
    eval_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens

    def evaluate() -> float:
        return heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, eval_tokens, data.system)["accuracy"]

    evaluating = evaluates_here(acc)  # the main process, or all of them when the policy is sharded
    start_accuracy = run.state.get("start_accuracy")
    if step == 0 and evaluating:
        start_accuracy = evaluate()
        log.log({"step": 0, "eval_accuracy": start_accuracy})
    watch = Stopwatch()
    prompts_here = list(range(acc.process_index, g.prompts_per_step, acc.num_processes))
    bar = progress_bar(ctx, g.steps, step)
    while step < g.steps and not (g.max_seconds and train_seconds >= g.max_seconds):
        started = time.perf_counter()
        seed_step(cfg.seed, step, acc.process_index)

        # --- roll out and score: this process's share of the step's prompts, G completions each
        batch_rows = data.rl_batch(step, g.prompts_per_step)
        rows = [batch_rows[i] for i in prompts_here]
        refilled = None
        if g.dynamic_sampling:  # refills draw from streams of their own, one per process
            def draw(refill: int, count: int) -> list:
                return rows if refill == 0 else data.rl_batch(step, count, f"refill/{refill}/{acc.process_index}")

            refilled = collect_with_refill(engine, scorer, tokenizer, draw, len(rows), g.group_size, sampling,
                                           data.system, vocabulary, watch, g.max_extra_prompts)
            c = refilled.collected
        else:
            c = collect(engine, scorer, tokenizer, rows, g.group_size, sampling, data.system, vocabulary, watch)
        advantages, keep = masked_group_advantages(c.rewards, c.valid, g.group_size, g.advantage_scale,
                                                   g.drop_equal_groups)
        if refilled is not None:
            keep &= refilled.trained

        # --- optimise: `epochs` passes over the kept samples, one optimiser step per pass
        with watch("train"):
            kept = keep.nonzero().squeeze(-1).tolist()
            train_stats = _optimise(acc, model, reference, optimizer, c.rollouts, kept, advantages, g,
                                    cfg.rollout.temperature, cfg.rollout.max_new_tokens, tokenizer.pad_token_id,
                                    correction)
        scheduler.step()
        synced = sync_engine(acc, engine, acc.unwrap_model(model), check, watch)
        step += 1
        train_seconds += time.perf_counter() - started

        # --- log, evaluate, checkpoint, then let the guards judge the step
        samples = sample_metrics(acc, c, keep)
        row = {
            "step": step,
            **samples,
            **verifier_metrics(acc, c.verdicts, c.names, sorted(scorer.verifiers)),
            **(refill_metrics(acc, refilled) if refilled is not None else {}),
            "lr": scheduler.get_last_lr()[0],
            **train_stats,
            **synced,
            **watch.pop(),
            "train_seconds": round(train_seconds, 3),
        }
        if evaluating and g.eval_every and step % g.eval_every == 0 and step < g.steps:
            row["eval_accuracy"] = evaluate()
        log.log(row)
        bar.update(1)
        bar.set_postfix(reward=f"{row['reward_mean'] or 0:.3f}", kl=f"{row.get('kl', 0):.4f}", refresh=False)
        if step % g.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds, start_accuracy=start_accuracy)
        run.guards.observe(row, masked_verdicts(acc, c.verdicts, c.names))
    bar.close()

    final_accuracy = None
    if evaluating:
        final_accuracy = evaluate()
        log.log({"step": step, "eval_accuracy": final_accuracy})
    engine.close()  # before finish: ending training destroys the process groups, vLLM's too
    final = run.finish(ctx, step, {"train_seconds": train_seconds, "start_accuracy": start_accuracy},
                       ["reward_mean", "eval_accuracy", "kl", "completion_len", *component_keys(scorer)], "GRPO")
    return {"model": str(final), "steps": step, "start_accuracy": start_accuracy,
            "final_accuracy": final_accuracy, "train_seconds": round(train_seconds, 2)}


def _optimise(acc, model, reference, optimizer, rollouts, kept: list[int], advantages: torch.Tensor,
              g: GRPOConfig, temperature: float, max_tokens: int, pad_id: int, correction=None) -> dict[str, float]:
    """`g.epochs` passes of the clipped surrogate over the kept samples, micro-batched; returns the
    loss statistics averaged over the passes and summed over the processes.

    Without `correction` the sampler's log-probs are pi_old (the engine samples from this very
    module). With it (a `LogprobCorrectionConfig`: another engine sampled), pi_old is the trainer's
    own forward before the update (with one epoch, the first pass's log-probs, detached) and the
    sampler's log-probs only enter the importance weights of each token."""
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

    micro_batches = []
    for m in range(n_micro):
        chunk = kept[m * g.micro_batch_size : (m + 1) * g.micro_batch_size] or kept[:1]
        weight_zero = not kept[m * g.micro_batch_size : (m + 1) * g.micro_batch_size]
        layout = pack_groups if g.shared_prefix else pack  # a group's prompt once, or once per completion
        packed = layout([rollouts.prompt_ids[i] for i in chunk], [rollouts.completion_ids[i] for i in chunk], pad_id)
        sampler = pad_rows([rollouts.logprobs[i] for i in chunk], packed.completion_ids.shape[1])
        packed, sampler = packed.to(acc.device), sampler.to(acc.device)
        old = None if correction is not None else sampler
        ref = None
        if reference is not None:
            with torch.inference_mode(), acc.autocast():
                ref = _completion_logprobs(reference, packed, temperature).clone()
        if correction is not None and g.epochs > 1:
            with torch.no_grad(), acc.autocast():  # not inference mode: a sharded policy reuses its gather buffers
                old = _completion_logprobs(model, packed, temperature)
        micro_batches.append((packed, sampler, old, ref, advantages[chunk].to(acc.device), weight_zero))

    keys = _LOSS_STATS + (_MISMATCH_STATS if correction is not None else ())
    sums = dict.fromkeys(keys, 0.0)
    for _ in range(g.epochs):
        for index, (packed, sampler, old, ref, adv, weight_zero) in enumerate(micro_batches):
            logps = _completion_logprobs(model, packed, temperature)
            is_weights, mismatch = None, {}
            if correction is not None:
                old = logps.detach() if old is None else old
                is_weights, mismatch = importance_weights(old, sampler, packed.completion_mask, correction.mode,
                                                          correction.cap)
            loss, stats = grpo_loss(logps, old, ref, adv, packed.completion_mask, clip_low=g.clip_low,
                                    clip_high=g.clip_high, beta=g.beta, aggregation=g.aggregation, max_tokens=max_tokens,
                                    is_weights=is_weights)
            share = _share(packed, g.aggregation, total_seqs, total_tokens)
            weight = 0.0 if weight_zero else share * acc.num_processes
            context = acc.no_sync(model) if index < len(micro_batches) - 1 else nullcontext()
            with context:
                acc.backward(loss * weight)
            if not weight_zero:
                for k, v in {"loss": loss, **stats, **mismatch}.items():
                    sums[k] += v.detach().item() * share
        grad_norm = acc.clip_grad_norm_(model.parameters(), g.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    # Each process holds its share of the batch-wide statistic: their sum is the batch's.
    totals = acc.reduce(torch.tensor([sums[k] for k in keys], device=acc.device), "sum").tolist()
    return {k: v / g.epochs for k, v in zip(keys, totals)} | {"grad_norm": float(grad_norm)}


_LOSS_STATS = ("loss", "pg_loss", "kl", "clip_fraction", "ratio_mean")
# Sampler vs trainer (an engine with weights of its own): see pipeline.losses.correction
_MISMATCH_STATS = ("mismatch_kl", "mismatch_abs", "is_clipped_fraction", "is_weight_mean")


def _completion_logprobs(model, batch: PackedBatch | GroupedBatch, temperature: float) -> torch.Tensor:
    if isinstance(batch, GroupedBatch):
        return grouped_completion_logprobs(model, batch, temperature)
    return completion_logprobs(model, batch, temperature)


def _share(packed: PackedBatch | GroupedBatch, aggregation: str, total_seqs: int, total_tokens: int) -> float:
    """This micro-batch's weight, so that summing weighted micro-batch losses gives the loss of the
    whole batch: token_mean weighs by tokens, sequence_mean and constant by sequences."""
    if aggregation == "token_mean":
        return float(packed.completion_mask.sum()) / total_tokens
    return packed.completion_ids.shape[0] / total_seqs


def main(argv: list[str] | None = None) -> int:
    return stage_main("grpo", train_grpo, argv)


if __name__ == "__main__":
    sys.exit(main())
