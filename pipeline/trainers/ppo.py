"""PPO with a critic, the classic RLHF recipe (Ziegler et al. 2019; Ouyang et al. 2022, InstructGPT).

    python -m pipeline.trainers.ppo --config configs/rlhf-tiny.yaml [--init SFT_DIR] [key=value ...]

A step: sample prompts -> one or more completions each from the policy -> the reward model scores
each completion -> per-token rewards `-kl_coef * (logp - ref_logp)`, the score added on the last
token -> the critic's values -> GAE(gamma, lambda) advantages, whitened over the batch's tokens ->
`epochs` passes over shuffled minibatches of the clipped policy loss, the clipped value loss and,
with PPO-ptx, `ptx_coef` times the SFT language-modelling loss -> the KL coefficient adapts toward
`kl_target` when one is set.

The critic is a separate model, not a value head on the policy: a `*ForSequenceClassification`
copy of the reward model (InstructGPT's choice; `critic_init: policy` starts it from the policy's
backbone instead), with its own optimiser. Separate weights cost a second model's memory, and buy
a policy whose features are never pulled around by value regression, and no value-loss weight to
tune against the policy loss. The score comes from the `reward_model` verifier through the same
contract as every verifier (a failed verdict masks its sample out of the loss); the reward model is
the round's reward_model stage result (`--input reward_model=DIR`), else `reward_model.path`, else
the reward_model stage's final directory under the run's output_dir.

Prints `{"stage": "ppo", "model": <final policy dir>, "value_model": <critic dir>, ...}`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping

import torch

from errors import DataError
from pipeline.checkpoint import export_model
from pipeline.config import PPOConfig, RunConfig
from pipeline.data import EpochSampler, PromptRow, build_task_data
from pipeline.evaluate import heldout_accuracy
from pipeline.forward import completion_logprobs, completion_values, mean_token_logprob, vocabulary_fingerprint
from pipeline.losses import gae, importance_weights, kl_shaped_rewards, masked_clip_fraction, masked_mean, policy_loss
from pipeline.losses import sft_loss
from pipeline.losses import value_loss, whiten
from pipeline.metrics import masked_verdicts, sample_metrics
from pipeline.models import frozen_reference, load_reward_model, scorer_from_causal_lm
from pipeline.rollout import sampling_params
from pipeline.rollout.collect import collect, score_rollouts
from pipeline.scoring import Scorer
from pipeline.stages import stage_main
from pipeline.tokens import PackedBatch, encode_demonstration, encode_prompt, pack, pad_rows
from pipeline.trainers.common import Stopwatch, make_optimizer, prepare_training, progress_bar, seed_step, setup_stage
from pipeline.trainers.common import evaluates_here, start_engine, sync_engine

__all__ = ["train_ppo", "AdaptiveKLController"]

REWARD_VERIFIER = "reward_model"


class AdaptiveKLController:
    """Ziegler et al. 2019, section 2.2: `coef *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon`,
    where KL is the batch's mean per-sequence KL and n its number of samples. Fixed when target is None."""

    def __init__(self, coef: float, target: float | None, horizon: int):
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, n: int) -> None:
        if self.target is None:
            return
        error = min(max(kl / self.target - 1, -0.2), 0.2)
        self.coef *= 1 + error * n / self.horizon


def train_ppo(cfg: RunConfig, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    # --- set up: policy, frozen reference, the reward's verifier, critic, engine, resume -------
    if inputs and inputs.get("reward_model"):  # the round's reward_model stage result
        cfg = cfg.model_copy(update={"reward_model": cfg.reward_model.model_copy(update={"path": inputs["reward_model"]})})
    ctx = setup_stage(cfg, "ppo", init)
    acc, tokenizer, p = ctx.accelerator, ctx.tokenizer, cfg.ppo
    data = build_task_data(cfg)
    scorer = Scorer.for_task(cfg, data, extra={p.verifier})
    vocabulary = vocabulary_fingerprint(tokenizer)  # the reward model scores the sampled ids when it shares it
    reference = frozen_reference(ctx.model).to(acc.device)
    critic = _initial_critic(p, cfg, ctx.model)
    critic_optimizer, critic_scheduler = make_optimizer(critic, p.model_copy(update={"lr": p.critic_lr}), p.steps)
    # Prepared before the policy, so every checkpoint holds both models and both optimisers.
    critic, critic_optimizer, critic_scheduler = acc.prepare(critic, critic_optimizer, critic_scheduler)

    ptx_examples = []
    if p.ptx_coef > 0:
        if not data.sft_rows:
            raise DataError("ppo.ptx_coef > 0 needs demonstrations (task.sft_size, or task.sft for a dataset)")
        ptx_examples = [encode_demonstration(tokenizer, r.prompt, r.response, p.max_length, data.system)
                        for r in data.sft_rows]
    ptx_sampler = EpochSampler(max(len(ptx_examples), 1), cfg.seed + 1)
    # The alignment tax, measured: log-likelihood of SFT demonstrations (ptx trains on these), and
    # for the built-in task, of held-out ones (its evaluation problems, answered correctly).
    probes = {"sft_logprob": [encode_demonstration(tokenizer, r.prompt, r.response, p.max_length, data.system)
                              for r in data.sft_rows[:256]]}
    if cfg.task.kind == "arithmetic":
        probes["heldout_logprob"] = [encode_demonstration(tokenizer, r.prompt, str(r.answer), p.max_length, data.system)
                                     for r in data.eval_rows[:256]]

    run = prepare_training(ctx, p, p.steps)
    model, optimizer, scheduler, log = run.model, run.optimizer, run.scheduler, run.log
    step, train_seconds = run.state["step"], run.state["train_seconds"]
    kl_ctl = AdaptiveKLController(run.state.get("kl_coef", p.kl_coef), p.kl_target, p.kl_horizon)
    engine, check, correction = start_engine(ctx, model, encode_prompt(tokenizer, data.eval_rows[0].prompt, data.system))
    sampling = sampling_params(cfg.rollout)
    eval_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    pad_id = tokenizer.pad_token_id

    def rewarded(rows: list[PromptRow]) -> list[PromptRow]:
        """The rows, each scored by PPO's reward verifier instead of its task verifier."""
        return [PromptRow(r.prompt, r.answer, p.verifier) for r in rows]

    def shaped(scores: torch.Tensor, truncated: list[bool]) -> torch.Tensor:
        """Training-only shaping of the scores `(N,)`: the missing-EOS penalty, then the clip."""
        if p.missing_eos_penalty is not None:
            scores = scores - p.missing_eos_penalty * torch.tensor(truncated, dtype=scores.dtype)
        return scores.clamp(-p.score_clip, p.score_clip) if p.score_clip else scores

    def evaluate() -> dict[str, float]:
        """Held-out task accuracy (greedy), mean raw score of samples on the held-out prompts (a
        fixed sampling seed), and the mean token log-likelihood of SFT demonstrations."""
        policy = acc.unwrap_model(model)
        out = {"eval_accuracy": heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, eval_tokens, data.system)["accuracy"]}
        prompts = [encode_prompt(tokenizer, r.prompt, data.system) for r in data.eval_rows]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 99)
            samples = engine.generate(prompts, 1, sampling)
        _, verdicts = score_rollouts(scorer, rewarded(data.eval_rows), samples, data.system, vocabulary)
        scored = [v.reward for v in verdicts if v.scored]
        out["eval_score"] = sum(scored) / len(scored) if scored else None
        for key, examples in probes.items():
            if examples:
                out[key] = mean_token_logprob(policy, examples, pad_id, p.micro_batch_size)
        return out

    evaluating = evaluates_here(acc)  # the main process, or all of them when the policy is sharded
    start_eval = run.state.get("start_eval")
    if step == 0 and evaluating:
        start_eval = evaluate()
        log.log({"step": 0, **start_eval})
    watch = Stopwatch()
    prompts_here = list(range(acc.process_index, p.prompts_per_step, acc.num_processes))
    bar = progress_bar(ctx, p.steps, step)
    while step < p.steps and not (p.max_seconds and train_seconds >= p.max_seconds):
        started = time.perf_counter()
        seed_step(cfg.seed, step, acc.process_index)

        # --- roll out and score: a masked verdict (timeout, error) takes its sample out of the loss
        step_rows = data.rl_batch(step, p.prompts_per_step)
        c = collect(engine, scorer, tokenizer, rewarded([step_rows[i] for i in prompts_here]), p.samples_per_prompt,
                    sampling, data.system, vocabulary, watch)
        rollouts = c.rollouts
        scores = shaped(torch.where(c.valid, c.rewards, 0.0), rollouts.truncated)

        # --- per-token rewards, values, advantages over the whole batch
        with watch("prepare"):
            batch = pack(rollouts.prompt_ids, rollouts.completion_ids, pad_id).to(acc.device)
            batch.completion_mask *= c.valid.to(batch.completion_mask)[:, None]
            mask = batch.completion_mask
            sampler_logps = pad_rows(rollouts.logprobs, mask.shape[1]).to(acc.device)
            with acc.autocast():
                ref_logps, old_values, trainer_logps = _forward_in_chunks(
                    reference, critic, batch, p.micro_batch_size, cfg.rollout.temperature,
                    policy=model if correction is not None else None)
            # pi_old: the sampler's log-probs when it is this module, else the trainer's own
            old_logps, is_weights, mismatch = sampler_logps, None, {}
            if correction is not None:
                old_logps = trainer_logps
                is_weights, mismatch = importance_weights(old_logps, sampler_logps, mask, correction.mode,
                                                          correction.cap)
            rewards, kl = kl_shaped_rewards(old_logps, ref_logps, scores.to(acc.device), mask, kl_ctl.coef)
            advantages, returns = gae(rewards, old_values, mask, p.gamma, p.lam)
            if p.whiten_advantages:
                advantages = whiten(advantages, mask)

        # --- optimise: `epochs` passes over shuffled minibatches of the scored samples
        with watch("train"):
            stats = _optimise(acc, model, critic, optimizer, critic_optimizer, batch,
                              (old_logps, old_values, advantages, returns, is_weights), p, cfg.rollout.temperature,
                              ptx_examples, ptx_sampler, step, pad_id, c.valid.nonzero().squeeze(-1).tolist())
        scheduler.step()
        critic_scheduler.step()
        synced = sync_engine(acc, engine, acc.unwrap_model(model), check, watch)
        valid_rows = c.valid.to(acc.device)
        seq_kl = float((kl * mask).sum(-1)[valid_rows].mean()) if bool(valid_rows.any()) else 0.0
        coef_used = kl_ctl.coef
        kl_ctl.update(seq_kl, int(c.valid.sum()))
        step += 1
        train_seconds += time.perf_counter() - started
        samples = sample_metrics(acc, c, None)
        valid_scores = scores[c.valid]

        # --- log, evaluate, checkpoint
        row = {
            "step": step,
            "score_mean": float(valid_scores.mean()) if valid_scores.numel() else None,
            "score_std": float(valid_scores.std()) if valid_scores.numel() > 1 else 0.0,
            "kl": seq_kl,
            "kl_coef": coef_used,
            "reward_mean": float((rewards * mask).sum(-1)[c.valid.to(mask.device)].mean()) if valid_scores.numel() else None,
            "value_mean": float(masked_mean(old_values, mask)),
            "return_mean": float(masked_mean(returns, mask)),
            "explained_variance": _explained_variance(old_values, returns, mask),
            "completion_len": samples["completion_len"],
            "truncated_frac": samples["truncated_frac"],
            "verdict_ok": samples["verdict_ok"],
            "verdict_timeout": samples["verdict_timeout"],
            "verdict_error": samples["verdict_error"],
            **stats,
            **{k: float(v) for k, v in mismatch.items()},
            **synced,
            "lr": scheduler.get_last_lr()[0],
            **watch.pop(),
            "train_seconds": round(train_seconds, 3),
        }
        if evaluating and p.eval_every and step % p.eval_every == 0 and step < p.steps:
            row.update(evaluate())
        log.log(row)
        bar.update(1)
        bar.set_postfix(score=f"{row['score_mean'] or 0:.3f}", kl=f"{seq_kl:.3f}", refresh=False)
        if step % p.checkpoint_every == 0:
            run.save(step, train_seconds=train_seconds, kl_coef=kl_ctl.coef, start_eval=start_eval)
        run.guards.observe(row, masked_verdicts(acc, c.verdicts, c.names))
    bar.close()

    final_eval = evaluate() if evaluating else {}
    if final_eval:
        log.log({"step": step, **final_eval})
    engine.close()  # before finish: ending training destroys the process groups, vLLM's too
    final = run.finish(ctx, step, {"train_seconds": train_seconds, "kl_coef": kl_ctl.coef, "start_eval": start_eval},
                       ["score_mean", "kl", "eval_score", "eval_accuracy", "value_loss", "sft_logprob"], "PPO")
    value_dir = export_model(acc, critic, tokenizer, ctx.stage_dir / "value_model")
    return {"model": str(final), "value_model": str(value_dir), "steps": step,
            "start": start_eval, "final": final_eval or None, "train_seconds": round(train_seconds, 2)}


def _initial_critic(p: PPOConfig, cfg: RunConfig, policy):
    """A copy of the trained reward model (InstructGPT), or a fresh head on the policy's backbone."""
    if p.critic_init == "reward_model":
        critic, _ = load_reward_model(cfg.reward_model_path, cfg.model.dtype)
    else:
        critic = scorer_from_causal_lm(policy, seed=cfg.seed)
    return critic.train().requires_grad_(True)


@torch.no_grad()
def _forward_in_chunks(reference, critic, batch: PackedBatch, size: int, temperature: float, policy=None):
    """Reference log-probs, the critic's values and (with `policy`) the policy's log-probs, `(N, Tc)`
    each (the last None without a policy), `size` rows at a time."""
    refs, values, policy_logps = [], [], []
    for start in range(0, batch.input_ids.shape[0], size):
        chunk = _rows(batch, slice(start, start + size))
        refs.append(completion_logprobs(reference, chunk, temperature))
        values.append(completion_values(critic, chunk))
        if policy is not None:
            policy_logps.append(completion_logprobs(policy, chunk, temperature))
    return torch.cat(refs), torch.cat(values), torch.cat(policy_logps) if policy is not None else None


def _optimise(acc, model, critic, optimizer, critic_optimizer, batch: PackedBatch, tensors, p: PPOConfig,
              temperature: float, ptx_examples, ptx_sampler: EpochSampler, step: int, pad_id: int,
              scored: list[int]) -> dict[str, float]:
    """`p.epochs` passes over shuffled minibatches of the `scored` samples (those with a verdict)."""
    old_logps, old_values, advantages, returns, is_weights = tensors
    if not scored:
        return {}
    n = batch.input_ids.shape[0]
    sums: dict[str, float] = {}
    updates = 0
    # The ptx demonstrations of each optimiser step are a function of (step, update): a resumed run
    # draws the ones the killed run would have drawn.
    first_update = step * p.epochs * -(-n // p.minibatch_size)
    for epoch in range(p.epochs):
        order = [scored[i] for i in torch.randperm(len(scored)).tolist()]
        for mb_start in range(0, len(order), p.minibatch_size):
            minibatch = order[mb_start : mb_start + p.minibatch_size]
            tokens = float(batch.completion_mask[minibatch].sum())
            for start in range(0, len(minibatch), p.micro_batch_size):
                idx = torch.tensor(minibatch[start : start + p.micro_batch_size], device=batch.input_ids.device)
                chunk = _rows(batch, idx)
                mask = chunk.completion_mask
                share = float(mask.sum()) / max(tokens, 1.0)  # token mean over the minibatch
                logps = completion_logprobs(model, chunk, temperature)
                values = completion_values(critic, chunk)
                pl = policy_loss(logps, old_logps[idx], advantages[idx], mask, p.clip,
                                 is_weights=None if is_weights is None else is_weights[idx])
                vl = value_loss(values, old_values[idx], returns[idx], mask, p.value_clip)
                acc.backward((pl + vl) * share)  # disjoint graphs: each model gets its own loss's gradient
                with torch.no_grad():
                    log_ratio = torch.where(mask.bool(), logps - old_logps[idx], 0.0)
                    _add(sums, share, policy_loss=pl, value_loss=vl,
                         clip_frac=masked_clip_fraction(logps, old_logps[idx], mask, p.clip, log_space=True),
                         value_clip_frac=masked_clip_fraction(values, old_values[idx], mask, p.value_clip, log_space=False),
                         approx_kl=masked_mean(0.5 * log_ratio**2, mask))
            if ptx_examples:  # PPO-ptx: pull the policy toward its demonstrations (InstructGPT eq. 2)
                picks = ptx_sampler.batch(first_update + updates, p.ptx_batch_size)
                demo = pack([ptx_examples[i][0] for i in picks], [ptx_examples[i][1] for i in picks], pad_id).to(acc.device)
                ptx = sft_loss(completion_logprobs(model, demo), demo.completion_mask)
                acc.backward(p.ptx_coef * ptx)
                _add(sums, 1.0, ptx_loss=ptx.detach())
            grad_norm = acc.clip_grad_norm_(model.parameters(), p.max_grad_norm)
            acc.clip_grad_norm_(critic.parameters(), p.max_grad_norm)
            optimizer.step()
            critic_optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            critic_optimizer.zero_grad(set_to_none=True)
            updates += 1
            _add(sums, 1.0, grad_norm=grad_norm)
    return {k: v / updates for k, v in sums.items()}


def _add(sums: dict[str, float], weight: float, **values) -> None:
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + float(v) * weight


def _rows(batch: PackedBatch, index) -> PackedBatch:
    return PackedBatch(*(t[index] for t in vars(batch).values()))


def _explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R) over the valid tokens: 1 is a perfect critic, 0 no better than a constant."""
    m = mask.bool()
    r, v = returns[m], values[m]
    var = r.var() if r.numel() > 1 else torch.tensor(0.0)
    return float(1 - (r - v).var() / var) if var > 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    return stage_main("ppo", train_ppo, argv)


if __name__ == "__main__":
    sys.exit(main())
