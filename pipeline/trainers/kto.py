"""KTO: preference optimisation from binary feedback, one completion at a time (Ethayarajh et al. 2024).

    python -m pipeline.trainers.kto --config configs/rlhf-tiny.yaml [--init SFT_DIR] [key=value ...]

Rows are (prompt, completion, desirable?); pair and ranking rows count as one desirable and one
undesirable row per pair. A step: a batch of rows -> policy and reference log-probs ->
the reference point z0, KL(pi || pi_ref) estimated on mismatched pairs (each prompt with the next
row's completion, as the paper does) -> `kto_loss`. Unlike DPO the reference stays in memory, as
the mismatched pairs change every batch.

Logged: implicit rewards of desirable and undesirable rows, z0, and (when the held-out data has
pairs) the held-out preference accuracy of the implicit reward, as for DPO.
Prints `{"stage": "kto", "model": <final dir>, ...}`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping

import torch

from errors import ConfigError, DataError
from pipeline.config import RunConfig
from pipeline.data import EpochSampler
from pipeline.forward import all_pair_logps, completion_logprobs
from pipeline.losses import implicit_reward_accuracy, kto_loss, sequence_logps
from pipeline.models import frozen_reference
from pipeline.preference import encode_pairs, load_preference_data
from pipeline.stages import stage_main
from pipeline.tokens import encode_demonstration, pack
from pipeline.trainers.common import prepare_training, progress_bar, setup_stage

__all__ = ["train_kto"]


def _logps(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int, device) -> torch.Tensor:
    batch = pack(prompts, completions, pad_id).to(device)
    return sequence_logps(completion_logprobs(model, batch), batch.completion_mask)  # (N,)


def train_kto(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: policy, frozen reference, rows, optimiser, resume -----------------------------
    ctx = setup_stage(cfg, "kto", init)
    acc, tokenizer, k = ctx.accelerator, ctx.tokenizer, cfg.kto
    data = load_preference_data(cfg, (inputs or {}).get("preferences"))  # a generate_preferences output, if any
    if not data.train_binary:
        raise DataError("kto stage: the preference data has no rows")
    if acc.num_processes > 1:
        raise ConfigError("kto stage: runs in one process (its KL reference point is estimated per batch)")
    rows = [(*encode_demonstration(tokenizer, r.prompt, r.completion, k.max_length, data.system), r.desirable)
            for r in data.train_binary]
    held_out = encode_pairs(tokenizer, data.eval_pairs, k.max_length, data.system)
    pad_id = tokenizer.pad_token_id
    reference = frozen_reference(ctx.model).to(acc.device)
    with acc.autocast():
        ref_held = all_pair_logps(reference, held_out, pad_id, k.micro_batch_size) if held_out else None
    sampler = EpochSampler(len(rows), cfg.seed)

    run = prepare_training(ctx, k, k.steps)
    model, scheduler, log = run.model, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]

    def evaluate() -> dict[str, float]:
        if ref_held is None:
            return {}
        policy = all_pair_logps(acc.unwrap_model(model), held_out, pad_id, k.micro_batch_size)
        return implicit_reward_accuracy(policy, ref_held, k.beta)

    start_eval = run.state.get("start_eval")
    if step == 0:
        start_eval = evaluate()
        log.log({"step": 0, **start_eval})
    bar = progress_bar(ctx, k.steps, step)
    while step < k.steps and not (k.max_seconds and train_seconds >= k.max_seconds):
        started = time.perf_counter()
        batch = sampler.batch(step, k.batch_size)
        sums = dict.fromkeys(("loss", "kl", "desirable_reward", "undesirable_reward"), 0.0)
        counts = [0, 0]
        for start in range(0, len(batch), k.micro_batch_size):
            chunk = [rows[i] for i in batch[start : start + k.micro_batch_size]]
            prompts, completions = [c[0] for c in chunk], [c[1] for c in chunk]
            desirable = torch.tensor([c[2] for c in chunk], device=acc.device)
            policy = _logps(model, prompts, completions, pad_id, acc.device)
            with torch.no_grad(), acc.autocast():
                ref = _logps(reference, prompts, completions, pad_id, acc.device)
                # z0: each prompt with another row's completion, so the estimate is of the KL on
                # outputs unrelated to the feedback (KTO, section 4.2).
                shifted = completions[1:] + completions[:1]
                kl = (_logps(model, prompts, shifted, pad_id, acc.device)
                      - _logps(reference, prompts, shifted, pad_id, acc.device)).mean()
            loss, rewards = kto_loss(policy, ref, desirable, kl, k.beta, k.desirable_weight, k.undesirable_weight)
            share = len(chunk) / len(batch)
            acc.backward(loss * share)
            sums["loss"] += loss.item() * share
            sums["kl"] += float(kl) * share
            sums["desirable_reward"] += float(rewards[desirable].sum())
            sums["undesirable_reward"] += float(rewards[~desirable].sum())
            counts[0] += int(desirable.sum())
            counts[1] += int((~desirable).sum())
        grad_norm = run.step(acc, k.max_grad_norm)
        step += 1
        train_seconds += time.perf_counter() - started

        row = {"step": step, "loss": sums["loss"], "kl": sums["kl"],
               "desirable_reward": sums["desirable_reward"] / counts[0] if counts[0] else None,
               "undesirable_reward": sums["undesirable_reward"] / counts[1] if counts[1] else None,
               "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 3)}
        if k.eval_every and step % k.eval_every == 0 and step < k.steps:
            row.update(evaluate())
        log.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{sums['loss']:.3f}", refresh=False)
        if step % k.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds, start_eval=start_eval)
        run.guards.observe(row)
    bar.close()

    final_eval = evaluate()
    if final_eval:
        log.log({"step": step, **final_eval})
    final = run.finish(ctx, step, {"train_seconds": train_seconds, "start_eval": start_eval},
                       ["loss", "kl", "desirable_reward", "undesirable_reward", "eval_accuracy"], "KTO")
    return {"model": str(final), "steps": step, "start_eval_accuracy": (start_eval or {}).get("eval_accuracy"),
            "eval_accuracy": final_eval.get("eval_accuracy"), "train_seconds": round(train_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    return stage_main("kto", train_kto, argv)


if __name__ == "__main__":
    sys.exit(main())
