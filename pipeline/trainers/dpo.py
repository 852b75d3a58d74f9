"""DPO: offline preference optimisation against a frozen reference (Rafailov et al. 2023).

    python -m pipeline.trainers.dpo --config configs/rlhf-tiny.yaml [--init SFT_DIR] [key=value ...]

A step: a batch of (prompt, chosen, rejected) pairs -> the policy's sequence log-probs of both
completions -> `dpo_loss` against the reference's log-probs -> one optimiser step. The reference
is the starting policy; its log-probs of every training and held-out pair are computed once before
training (they never change), so no second model sits in memory during the loop. With `nll_coef`
the chosen completions' per-token NLL joins the loss (RPO, as Llama 3's rounds train). The pairs come
from `preference` or from a generate_preferences stage (`--input preferences=DIR`).

Logged: the implicit rewards `beta * log(pi / pi_ref)` of chosen and rejected completions, their
margin, and the preference accuracy (chosen reward > rejected reward) on the batch and on the
held-out pairs. Prints `{"stage": "dpo", "model": <final dir>, ...}`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping

import torch

from errors import DataError
from pipeline.config import RunConfig
from pipeline.data import EpochSampler
from pipeline.forward import all_pair_logps, pair_logps
from pipeline.losses import dpo_loss, implicit_reward_accuracy
from pipeline.preference import encode_pairs, load_preference_data
from pipeline.stages import stage_main
from pipeline.trainers.common import evaluates_here, prepare_training, progress_bar, setup_stage

__all__ = ["train_dpo"]


def train_dpo(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: policy, pairs, the reference's log-probs (computed once), optimiser, resume --
    ctx = setup_stage(cfg, "dpo", init)
    acc, tokenizer, d = ctx.accelerator, ctx.tokenizer, cfg.dpo
    data = load_preference_data(cfg, (inputs or {}).get("preferences"))  # a generate_preferences output, if any
    if not data.train_pairs or not data.eval_pairs:
        raise DataError("dpo stage: the preference data has no pairs (it needs pair or ranking rows)")
    train = encode_pairs(tokenizer, data.train_pairs, d.max_length, data.system)
    held_out = encode_pairs(tokenizer, data.eval_pairs, d.max_length, data.system)
    pad_id = tokenizer.pad_token_id
    ctx.model.to(acc.device)
    # The starting policy is the reference: its log-probs, before any update (and before a resumed
    # checkpoint is loaded into it).
    with acc.autocast():
        ref_train = all_pair_logps(ctx.model, train, pad_id, d.micro_batch_size)
        ref_held = all_pair_logps(ctx.model, held_out, pad_id, d.micro_batch_size)
    sampler = EpochSampler(len(train), cfg.seed)

    run = prepare_training(ctx, d, d.steps)
    model, scheduler, log = run.model, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]

    def evaluate() -> dict[str, float]:
        policy = all_pair_logps(acc.unwrap_model(model), held_out, pad_id, d.micro_batch_size)
        return implicit_reward_accuracy(policy, ref_held, d.beta)

    evaluating = evaluates_here(acc)  # the main process, or all of them when the policy is sharded
    start_eval = run.state.get("start_eval")
    if step == 0 and evaluating:
        start_eval = evaluate()
        log.log({"step": 0, **start_eval})
    bar = progress_bar(ctx, d.steps, step)
    while step < d.steps and not (d.max_seconds and train_seconds >= d.max_seconds):
        started = time.perf_counter()
        # --- one optimiser step over a global batch of pairs, split across processes and micro-batches
        batch = sampler.batch(step, d.batch_size)
        mine = batch[acc.process_index :: acc.num_processes]
        sums = torch.zeros(5, dtype=torch.float64)  # loss, correct, margin, chosen, rejected (sums over pairs)
        for start in range(0, len(mine), d.micro_batch_size):
            indices = mine[start : start + d.micro_batch_size]
            chosen, rejected = pair_logps(model, [train[i] for i in indices], pad_id, acc.device)
            ref = ref_train[indices].to(acc.device)
            lengths = torch.tensor([len(train[i][1]) for i in indices], device=acc.device)
            loss, chosen_r, rejected_r = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], d.beta, d.label_smoothing,
                                                  d.nll_coef, lengths)
            acc.backward(loss * len(indices) / len(batch) * acc.num_processes)
            sums += torch.tensor([loss.item() * len(indices), float((chosen_r > rejected_r).sum()),
                                  float((chosen_r - rejected_r).sum()), float(chosen_r.sum()), float(rejected_r.sum())],
                                 dtype=torch.float64)
        loss_v, accuracy, margin, chosen_v, rejected_v = (acc.reduce(sums.to(acc.device), "sum") / len(batch)).tolist()
        grad_norm = run.step(acc, d.max_grad_norm)
        step += 1
        train_seconds += time.perf_counter() - started

        # --- log, evaluate, checkpoint
        row = {"step": step, "loss": loss_v, "reward_accuracy": accuracy, "reward_margin": margin,
               "chosen_reward": chosen_v, "rejected_reward": rejected_v, "grad_norm": grad_norm,
               "lr": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 3)}
        if evaluating and d.eval_every and step % d.eval_every == 0 and step < d.steps:
            row.update(evaluate())
        log.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{accuracy:.2f}", refresh=False)
        if step % d.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds, start_eval=start_eval)
        run.guards.observe(row)
    bar.close()

    final_eval = evaluate() if evaluating else {}
    if final_eval:
        log.log({"step": step, **final_eval})
    final = run.finish(ctx, step, {"train_seconds": train_seconds, "start_eval": start_eval},
                       ["loss", "reward_accuracy", "eval_accuracy", "reward_margin"], "DPO")
    return {"model": str(final), "steps": step, "start_eval_accuracy": (start_eval or {}).get("eval_accuracy"),
            "eval_accuracy": final_eval.get("eval_accuracy"), "eval_margin": final_eval.get("eval_margin"),
            "train_seconds": round(train_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    return stage_main("dpo", train_dpo, argv)


if __name__ == "__main__":
    sys.exit(main())
