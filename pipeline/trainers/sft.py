"""Supervised fine-tuning: next-token loss on the assistant's tokens only, through the chat template.

    python -m pipeline.trainers.sft --config configs/tiny.yaml [--init DIR] [--input demonstrations=DIR] [key=value ...]

The demonstrations are the task's, or a rejection_sampling stage's (`--input demonstrations=DIR`:
the best of K samples of an earlier policy, expert iteration).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from errors import DataError
from pipeline.config import HFRolloutConfig, RunConfig
from pipeline.data import EpochSampler, build_task_data, load_demonstrations
from pipeline.evaluate import heldout_accuracy
from pipeline.forward import completion_logprobs
from pipeline.losses import sft_loss
from pipeline.rollout import make_engine
from pipeline.scoring import Scorer
from pipeline.stages import stage_main
from pipeline.tokens import encode_demonstration, pack
from pipeline.trainers.common import evaluates_here, prepare_training, progress_bar, setup_stage

__all__ = ["train_sft"]


def train_sft(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: model, data, optimiser, resume ---------------------------------------------
    ctx = setup_stage(cfg, "sft", init)
    acc, tokenizer, s = ctx.accelerator, ctx.tokenizer, cfg.sft
    data = build_task_data(cfg)
    rows = data.sft_rows
    if inputs and inputs.get("demonstrations"):  # a rejection_sampling stage's output
        rows = load_demonstrations(Path(inputs["demonstrations"]) / "demonstrations.jsonl")
    if not rows:
        raise DataError("sft stage: the task has no demonstrations (set task.sft_size, or task.sft for a dataset)")
    examples = [encode_demonstration(tokenizer, r.prompt, r.response, s.max_length, data.system) for r in rows]
    sampler = EpochSampler(len(examples), cfg.seed)

    run = prepare_training(ctx, s, s.steps)
    model, scheduler, log = run.model, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]

    if s.eval_every:  # held-out accuracy during SFT with an engine that shares the policy's weights
        rollout = cfg.rollout if cfg.rollout.backend == "hf" else HFRolloutConfig(max_new_tokens=cfg.rollout.max_new_tokens)
        engine = make_engine(rollout, tokenizer, model=acc.unwrap_model(model), model_path=ctx.source_path)
        scorer = Scorer.for_task(cfg, data)
        eval_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens

    def evaluate() -> float:
        return heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, eval_tokens, data.system)["accuracy"]

    loss_value = None
    bar = progress_bar(ctx, s.steps, step)
    while step < s.steps and not (s.max_seconds and train_seconds >= s.max_seconds):
        started = time.perf_counter()
        # --- one optimiser step over a global batch, split across processes and micro-batches
        batch = sampler.batch(step, s.batch_size)
        total_tokens = sum(len(examples[i][1]) for i in batch)
        mine = batch[acc.process_index :: acc.num_processes]
        loss_value = 0.0
        for start in range(0, len(mine), s.micro_batch_size):
            chunk = [examples[i] for i in mine[start : start + s.micro_batch_size]]
            packed = pack([p for p, _ in chunk], [c for _, c in chunk], tokenizer.pad_token_id).to(acc.device)
            logps = completion_logprobs(model, packed)
            # Weight by this chunk's share of the global batch's tokens: the sum over chunks and
            # processes (DDP averages gradients) is the token mean of the whole batch.
            share = packed.completion_mask.sum() / total_tokens
            loss = sft_loss(logps, packed.completion_mask) * share * acc.num_processes
            acc.backward(loss)
            loss_value += loss.item() / acc.num_processes
        loss_value = acc.reduce(torch.tensor(loss_value, device=acc.device), "sum").item()  # the global batch's
        grad_norm = run.step(acc, s.max_grad_norm)
        step += 1
        train_seconds += time.perf_counter() - started

        # --- log, checkpoint
        row = {"step": step, "loss": loss_value, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
               "tokens": total_tokens, "train_seconds": round(train_seconds, 3)}
        log.log(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        if s.eval_every and step % s.eval_every == 0 and evaluates_here(acc):
            log.log({"step": step, "eval_accuracy": evaluate()})
        if step % s.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds)
        run.guards.observe(row)
    bar.close()

    final = run.finish(ctx, step, {"train_seconds": train_seconds}, ["loss", "eval_accuracy"], "SFT")
    return {"model": str(final), "steps": step, "loss": loss_value, "train_seconds": round(train_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    return stage_main("sft", train_sft, argv)


if __name__ == "__main__":
    sys.exit(main())
