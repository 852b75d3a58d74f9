"""Reward model: a scalar head on the policy's backbone, trained with the Bradley-Terry loss on
preference pairs (InstructGPT, Ouyang et al. 2022, section 3.5).

    python -m pipeline.trainers.reward_model --config configs/rlhf-tiny.yaml [--init SFT_DIR] [key=value ...]

The model is an `AutoModelForSequenceClassification` with one label, started from the `--init`
policy (usually the SFT model) with a fresh head. Its score of a (prompt, completion) is the head
applied to the final hidden state of the completion's last token (the EOS the assistant's turn
ends with). The final directory is a plain Hugging Face model: `AutoModelForSequenceClassification
.from_pretrained(dir)` scores the same way when the tokenizer's pad token differs from EOS.

This stage prints `{"stage": "reward_model", "reward_model": <final dir>, ...}` and no "model":
the policy passes on to the next stage unchanged.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping

import torch

from errors import DataError
from pipeline.config import RunConfig
from pipeline.data import EpochSampler
from pipeline.forward import sequence_scores
from pipeline.losses import bradley_terry_loss, pairwise_accuracy
from pipeline.models import scorer_from_causal_lm
from pipeline.preference import EncodedPair, encode_pairs, load_preference_data, pack_pairs
from pipeline.stages import stage_main
from pipeline.trainers.common import evaluates_here, prepare_training, progress_bar, setup_stage

__all__ = ["train_reward_model", "evaluate_pairs"]


def _pair_scores(model, chunk: list[EncodedPair], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    scores = sequence_scores(model, pack_pairs(chunk, pad_id).to(device))  # (2N,)
    return scores[: len(chunk)], scores[len(chunk) :]


@torch.no_grad()
def evaluate_pairs(model, encoded: list[EncodedPair], pad_id: int, batch_size: int) -> dict[str, float]:
    """Held-out pairwise accuracy (a tie counts as wrong), Bradley-Terry loss and mean score margin."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chosen, rejected = [], []
    for start in range(0, len(encoded), batch_size):
        c, r = _pair_scores(model, encoded[start : start + batch_size], pad_id, device)
        chosen.append(c)
        rejected.append(r)
    model.train(was_training)
    c, r = torch.cat(chosen), torch.cat(rejected)
    return {
        "eval_accuracy": float(pairwise_accuracy(c, r)),
        "eval_loss": float(bradley_terry_loss(c, r)),
        "eval_margin": float((c - r).mean()),
    }


def train_reward_model(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: scorer on the policy's backbone, pairs, optimiser, resume -------------------
    ctx = setup_stage(cfg, "reward_model", init, lora=False)  # the scorer trains every weight
    acc, tokenizer, r = ctx.accelerator, ctx.tokenizer, cfg.reward_model
    ctx.model = scorer_from_causal_lm(ctx.model, seed=cfg.seed)
    ctx.model.config.pad_token_id = tokenizer.pad_token_id
    data = load_preference_data(cfg, (inputs or {}).get("preferences"))  # a generate_preferences output, if any
    if not data.train_pairs or not data.eval_pairs:
        raise DataError("reward_model stage: the preference data has no pairs (it needs pair or ranking rows)")
    train = encode_pairs(tokenizer, data.train_pairs, r.max_length, data.system)
    held_out = encode_pairs(tokenizer, data.eval_pairs, r.max_length, data.system)
    margins = [p.margin for p in data.train_pairs]
    use_margin = r.use_margin and any(m is not None for m in margins)
    sampler = EpochSampler(len(train), cfg.seed)

    run = prepare_training(ctx, r, r.steps)
    model, scheduler, log = run.model, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]
    pad_id = tokenizer.pad_token_id
    evaluating = evaluates_here(acc)  # the main process, or all of them when the model is sharded

    def evaluate() -> dict[str, float]:
        return evaluate_pairs(acc.unwrap_model(model), held_out, pad_id, r.micro_batch_size)

    bar = progress_bar(ctx, r.steps, step)
    while step < r.steps and not (r.max_seconds and train_seconds >= r.max_seconds):
        started = time.perf_counter()
        # --- one optimiser step over a global batch of pairs, split across processes and micro-batches
        batch = sampler.batch(step, r.batch_size)
        mine = batch[acc.process_index :: acc.num_processes]
        sums = torch.zeros(3, dtype=torch.float64)  # loss, correct pairs, score margin (sums over pairs)
        for start in range(0, len(mine), r.micro_batch_size):
            indices = mine[start : start + r.micro_batch_size]
            chosen, rejected = _pair_scores(model, [train[i] for i in indices], pad_id, acc.device)
            margin = None
            if use_margin:
                margin = torch.tensor([margins[i] or 0.0 for i in indices], device=acc.device)
            loss = bradley_terry_loss(chosen, rejected, margin)
            # Each micro-batch's mean weighted by its share of the global batch: the sum over
            # chunks and processes (DDP averages gradients) is the global batch's mean.
            acc.backward(loss * len(indices) / len(batch) * acc.num_processes)
            sums += torch.tensor([loss.item() * len(indices), float((chosen > rejected).sum()),
                                  float((chosen - rejected).detach().sum())], dtype=torch.float64)
        loss_sum, correct, margin_sum = (acc.reduce(sums.to(acc.device), "sum") / len(batch)).tolist()
        grad_norm = run.step(acc, r.max_grad_norm)
        step += 1
        train_seconds += time.perf_counter() - started

        # --- log, evaluate, checkpoint
        row = {"step": step, "loss": loss_sum, "accuracy": correct, "margin": margin_sum,
               "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 3)}
        if evaluating and r.eval_every and step % r.eval_every == 0 and step < r.steps:
            row.update(evaluate())
        log.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", acc=f"{correct:.2f}", refresh=False)
        if step % r.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds)
        run.guards.observe(row)
    bar.close()

    final_eval = evaluate() if evaluating else {}
    if final_eval:
        log.log({"step": step, **final_eval})
    final = run.finish(ctx, step, {"train_seconds": train_seconds}, ["loss", "accuracy", "eval_accuracy", "margin"],
                       "Reward model")
    return {"reward_model": str(final), "steps": step, "eval_accuracy": final_eval.get("eval_accuracy"),
            "eval_pairs": len(held_out), "train_seconds": round(train_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    return stage_main("reward_model", train_reward_model, argv)


if __name__ == "__main__":
    sys.exit(main())
