"""Seconds per GRPO step, this project against TRL's GRPOTrainer, in one invocation.

    python bench/grpo_step.py [--steps 4] [--threads 2] [--order trl,ours]

Both sides run their real training paths on SmolLM2-135M-Instruct (fp32, the same safetensors
directory), the same prompts (the built-in arithmetic task's first `steps` RL batches, through the
same chat template), 2 prompts x 4 completions x exactly 64 new tokens (min_new_tokens = max),
temperature 1, top_p 1, beta 0.04, one optimiser step per rollout batch over all 8 completions,
the same learning rate and the same torch thread count.

- ours: `pipeline.trainers.grpo.train_grpo`; per-step seconds are the differences of the
  cumulative `train_seconds` in grpo/metrics.jsonl (held-out evaluations are not counted), and
  the generate / verify / train split is the `time_*_s` the trainer records.
- trl: `trl.GRPOTrainer.train()`; a TrainerCallback times each step (on_step_begin ->
  on_step_end), and timers wrapped around the trainer's own methods split it into generate
  (`_generate_single_turn`), verify (`_calculate_rewards`) and the rest ("train": reference and
  policy forwards, backward, optimiser), with the reference forward also shown alone.

Reported: the median over steps 2..N (step 1 includes warm-up), the ratio TRL / ours and whether
it meets the target (ours at least 2x faster). Exits 0 either way: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pipeline  # noqa: E402,F401  (sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from pipeline.config import load_config  # noqa: E402

PROMPTS, GROUP, NEW_TOKENS, BETA, LR = 2, 4, 64, 0.04, 1e-6
TARGET = 2.0


def our_overrides(args, out: Path) -> list[str]:
    return [
        "model.name=smollm2-135m", f"output_dir={out}", f"threads={args.threads}",
        f"grpo.steps={args.steps}", f"grpo.prompts_per_step={PROMPTS}", f"grpo.group_size={GROUP}",
        f"grpo.beta={BETA}", f"grpo.lr={LR}", f"grpo.micro_batch_size={PROMPTS * GROUP}", "grpo.epochs=1",
        "grpo.drop_equal_groups=false", "grpo.eval_every=0", "grpo.checkpoint_every=1000000",
        "task.eval_size=2", "task.sft_size=0", f"rollout.max_new_tokens={NEW_TOKENS}",
        f"rollout.min_new_tokens={NEW_TOKENS}", "rollout.temperature=1.0", "rollout.top_p=1.0",
    ]


def median_after_first(values: list[float]) -> float:
    return round(statistics.median(values[1:] or values), 3)


def run_ours(args, out: Path) -> dict:
    from pipeline.metrics import read_metrics
    from pipeline.trainers.grpo import train_grpo

    cfg = load_config(None, our_overrides(args, out))
    started = time.perf_counter()
    train_grpo(cfg, init=None)
    wall = time.perf_counter() - started
    rows = [r for r in read_metrics(out / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    cumulative = [0.0] + [r["train_seconds"] for r in rows]
    step_s = [b - a for a, b in zip(cumulative, cumulative[1:])]
    phase = {k: median_after_first([r.get(f"time_{k}_s", 0.0) for r in rows]) for k in ("generate", "verify", "train")}
    return {"step_s": median_after_first(step_s), "steps_s": [round(s, 3) for s in step_s], **phase,
            "completion_len": [r["completion_len"] for r in rows], "wall_s": round(wall, 1)}


def run_trl(args, rows, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.models import cache_root, smollm2_directory
    from pipeline.tokens import encode_prompt
    from verifiers import registry

    torch.set_num_threads(args.threads)
    model_dir = str(smollm2_directory(cache_root()))
    verifier = registry.get("math")

    def math_reward(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [v.reward for v in verifier.verify(texts, answer)]

    # Row k * PROMPTS + i is prompt i of step k; no shuffling, so TRL sees our per-step batches.
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r.prompt}], "answer": r.answer} for r in rows])
    config = GRPOConfig(
        output_dir=str(out), use_vllm=False, bf16=False, use_cpu=True, report_to="none", seed=0,
        beta=BETA, num_generations=GROUP, max_completion_length=NEW_TOKENS,
        per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1, num_iterations=1,
        temperature=1.0, top_p=1.0, top_k=0, generation_kwargs={"min_new_tokens": NEW_TOKENS},
        learning_rate=LR, max_steps=args.steps, logging_steps=1, save_strategy="no",
        shuffle_dataset=False, loss_type="dapo", model_init_kwargs={"dtype": torch.float32},
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trainer = GRPOTrainer(model=model_dir, reward_funcs=math_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)

    phases: list[dict[str, float]] = []  # one dict per step
    seen_prompt_ids: list[list[int]] = []

    def timed(phase, method):
        """`method`, adding its seconds to this step's `phase` (a name, or a function giving one)."""
        def wrapper(*a, **kw):
            started = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                key = phase() if callable(phase) else phase
                phases[-1][key] = phases[-1].get(key, 0.0) + time.perf_counter() - started
        return wrapper

    original_generate = trainer._generate_single_turn

    def generate(prompt_ids, *a, **kw):
        seen_prompt_ids.extend(list(p) for p in prompt_ids)
        return original_generate(prompt_ids, *a, **kw)

    trainer._generate_single_turn = timed("generate", generate)
    trainer._calculate_rewards = timed("verify", trainer._calculate_rewards)
    # The reference forward runs under no_grad, the policy's training forward with grad.
    trainer._get_per_token_logps_and_entropies = timed(
        lambda: "policy_forward" if torch.is_grad_enabled() else "ref", trainer._get_per_token_logps_and_entropies)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            phases.append({"_start": time.perf_counter()})

        def on_step_end(self, *_, **__):
            phases[-1]["step"] = time.perf_counter() - phases[-1].pop("_start")

    lengths: list[float] = []

    class LengthLog(TrainerCallback):
        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    trainer.add_callback(StepTimer())
    trainer.add_callback(LengthLog())
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started

    ours = [encode_prompt(tokenizer, r.prompt) for r in rows[:PROMPTS] for _ in range(GROUP)]
    step_s = [p["step"] for p in phases]
    split = {k: median_after_first([p.get(k, 0.0) for p in phases]) for k in ("generate", "verify", "ref", "policy_forward")}
    train = median_after_first([p["step"] - p.get("generate", 0.0) - p.get("verify", 0.0) for p in phases])
    return {"step_s": median_after_first(step_s), "steps_s": [round(s, 3) for s in step_s], **split, "train": train,
            "completion_len": lengths, "same_prompt_ids": seen_prompt_ids[: len(ours)] == ours,
            "loss_type": config.loss_type, "wall_s": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per side (median of steps 2..N)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, the same for both sides")
    parser.add_argument("--order", default="trl,ours", help="which side runs first: trl,ours or ours,trl")
    args = parser.parse_args()
    order = args.order.split(",")
    if sorted(order) != ["ours", "trl"]:
        parser.error(f"--order must name trl and ours once each, got {args.order!r}")

    from pipeline.data import build_task_data

    invocation = time.perf_counter()
    data = build_task_data(load_config(None, our_overrides(args, Path(tempfile.gettempdir()))))  # the task only
    rows = [row for step in range(args.steps) for row in data.rl_batch(step, PROMPTS)]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="grpo-step-bench-") as tmp:
        for side in order:
            print(f"--- {side}: {args.steps} steps, {args.threads} threads", file=sys.stderr, flush=True)
            out = Path(tmp) / side
            results[side] = run_ours(args, out) if side == "ours" else run_trl(args, rows, out)
            gc.collect()

    ours, trl = results["ours"], results["trl"]
    ratio = trl["step_s"] / ours["step_s"]
    print()
    print(f"order {args.order}, {args.threads} threads, {args.steps} steps each, median of steps 2..{args.steps}")
    print(f"ours   s/step {ours['step_s']:6.2f}  (generate {ours['generate']:.2f}, verify {ours['verify']:.3f}, "
          f"train {ours['train']:.2f})   steps {ours['steps_s']}")
    print(f"trl    s/step {trl['step_s']:6.2f}  (generate {trl['generate']:.2f}, verify {trl['verify']:.3f}, "
          f"train {trl['train']:.2f} of which ref forward {trl['ref']:.2f})   steps {trl['steps_s']}")
    print(f"ratio  {ratio:.2f}x  (target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"completion lengths: ours {ours['completion_len']}, trl {trl['completion_len']}; "
          f"same prompt ids: {trl['same_prompt_ids']}")
    print(json.dumps({"threads": args.threads, "steps": args.steps, "order": args.order, "ratio": round(ratio, 3),
                      "target_met": ratio >= TARGET, "ours": ours, "trl": trl,
                      "invocation_s": round(time.perf_counter() - invocation, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
