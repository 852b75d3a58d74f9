"""Seconds per GRPO step, this project against TRL's GRPOTrainer, in one invocation; a scaling table
over group size and completion length; peak memory of both; and the step against this machine's
bound (its measured matmul rate and memory bandwidth).

    python bench/grpo_step.py [--steps 4] [--threads 2] [--order trl,ours] [--precision fp32|bf16]
                              [--scaling] [--scaling-steps 2] [--grid]
    python bench/grpo_step.py --profile 30    # our step's operators, by CPU time

Both sides run their real training paths on SmolLM2-135M-Instruct (the same safetensors directory),
the same prompts (the built-in arithmetic task's RL batches, through the same chat template),
2 prompts x G completions x exactly L new tokens (min_new_tokens = max), temperature 1, top_p 1,
beta 0.04, one optimiser step per rollout batch over all completions, the same learning rate and
the same torch thread count. The default setting is G=4, L=64, fp32; `--precision bf16` runs both
under bfloat16 autocast (ours: `mixed_precision=bf16`; TRL: `bf16=True`), weights in float32. TRL
runs with its GRPOConfig defaults otherwise, gradient checkpointing included (it recomputes the
forward in the backward to save memory); `--trl-checkpointing off` takes TRL's fastest setting.

Each side runs in its own process (so its peak resident memory is its own, read from VmHWM):
- ours: `pipeline.trainers.grpo.train_grpo`; per-step seconds are the differences of the
  cumulative `train_seconds` in grpo/metrics.jsonl, split by the trainer's own `time_*_s`;
- trl: `trl.GRPOTrainer.train()`; a TrainerCallback times each step (on_step_begin -> on_step_end),
  and timers around its methods split it into generate (`_generate_single_turn`) and verify
  (`_calculate_rewards`).
On both sides the same timers wrap the reference forward (the log-prob function called without
gradients), the policy forward (with gradients), `Accelerator.backward` and `AdamW.step`; "other"
is the rest of the step.

The machine's bound: a matmul rate measured at the training forward's shapes and a memory
bandwidth (a 1 GiB read), in this run, before the sides; the step's FLOP and bytes come from the
model's shapes and the step's token counts (`step_cost`). The bound of a step is the sum over its
phases of max(FLOP / rate, bytes / bandwidth); the table gives each side's seconds over it.

Reported: medians over steps 2..N (step 1 includes warm-up), the ratio TRL / ours and whether the
default setting meets the target (ours at least 2x faster), and the load average around each side
(the machine is shared: compare ratios taken in one invocation). Exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
PHASES = ("generate", "verify", "ref", "policy_forward", "backward", "optimizer")


def our_overrides(steps: int, threads: int, group: int, tokens: int, precision: str, out: Path) -> list[str]:
    return [
        "model.name=smollm2-135m", f"output_dir={out}", f"threads={threads}",
        f"mixed_precision={precision}",
        f"grpo.steps={steps}", f"grpo.prompts_per_step={PROMPTS}", f"grpo.group_size={group}",
        f"grpo.beta={BETA}", f"grpo.lr={LR}", f"grpo.micro_batch_size={PROMPTS * group}", "grpo.epochs=1",
        "grpo.drop_equal_groups=false", "grpo.eval_every=0", "grpo.checkpoint_every=1000000",
        "task.eval_size=2", "task.sft_size=0", f"rollout.max_new_tokens={tokens}",
        f"rollout.min_new_tokens={tokens}", "rollout.temperature=1.0", "rollout.top_p=1.0",
    ]


def median_after_first(values: list[float]) -> float:
    return round(statistics.median(values[1:] or values), 3)


class PhaseTimers:
    """Seconds per phase per step, from wrappers around the functions both sides call."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = [{}]

    def wrap(self, phase, method):
        """`method`, adding its seconds to this step's `phase` (a name, or a function giving one)."""
        def wrapper(*a, **kw):
            started = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                key = phase() if callable(phase) else phase
                self.steps[-1][key] = self.steps[-1].get(key, 0.0) + time.perf_counter() - started
        return wrapper

    def next_step(self) -> None:
        self.steps.append({})

    def medians(self, keys) -> dict[str, float]:
        done = [s for s in self.steps if s]
        return {k: median_after_first([s.get(k, 0.0) for s in done]) for k in keys}


def _common_timers(timers: PhaseTimers) -> None:
    """Backward and optimiser-step timers, the same on both sides."""
    import torch
    from accelerate import Accelerator

    Accelerator.backward = timers.wrap("backward", Accelerator.backward)
    torch.optim.AdamW.step = timers.wrap("optimizer", torch.optim.AdamW.step)


def _logprob_timer(timers: PhaseTimers, method):
    import torch

    return timers.wrap(lambda: "policy_forward" if torch.is_grad_enabled() else "ref", method)


def run_ours(args) -> dict:
    import pipeline.trainers.grpo as grpo
    from pipeline.metrics import read_metrics
    from pipeline.trainers.common import Stopwatch

    out = Path(args.out_dir)
    cfg = load_config(None, our_overrides(args.steps, args.threads, args.group, args.tokens, args.precision, out))
    timers = PhaseTimers()
    _common_timers(timers)
    grpo._completion_logprobs = _logprob_timer(timers, grpo._completion_logprobs)
    import pipeline.rollout.sampler as sampler

    steps_taken: set[str] = set()  # which decode step the sampler took: compiled, fused torch or neither
    for name in ("NativeLlamaStep", "FusedLlamaStep"):
        holder = sampler.native if name == "NativeLlamaStep" else sampler
        original = getattr(holder, name)
        setattr(holder, name, lambda *a, _o=original, _n=name: (steps_taken.add(_n), _o(*a))[1])
    pop = Stopwatch.pop
    Stopwatch.pop = lambda self: (timers.next_step(), pop(self))[1]  # the trainer pops once per step
    profiler = None
    if args.profile:  # step 2 only (step 1 warms up): operators by their own CPU time
        import torch

        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          schedule=torch.profiler.schedule(wait=1, warmup=0, active=1, repeat=1))
        popped = Stopwatch.pop
        Stopwatch.pop = lambda self: (profiler.step(), popped(self))[1]
        profiler.start()
    started = time.perf_counter()
    grpo.train_grpo(cfg, init=None)
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile)
        print(table, file=sys.stderr, flush=True)
    rows = [r for r in read_metrics(out / "grpo" / "metrics.jsonl") if "verdict_ok" in r]
    cumulative = [0.0] + [r["train_seconds"] for r in rows]
    step_s = [b - a for a, b in zip(cumulative, cumulative[1:])]
    phases = timers.medians(PHASES[2:])
    phases |= {k: median_after_first([r.get(f"time_{k}_s", 0.0) for r in rows]) for k in ("generate", "verify")}
    return {"step_s": median_after_first(step_s), "steps_s": [round(s, 3) for s in step_s], **phases,
            "completion_len": [r["completion_len"] for r in rows], "wall_s": round(wall, 1),
            "decode_step": sorted(steps_taken) or ["transformers forward"]}


def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.data import build_task_data
    from pipeline.models import cache_root, smollm2_directory
    from pipeline.tokens import encode_prompt
    from verifiers import registry

    torch.set_num_threads(args.threads)
    model_dir = str(smollm2_directory(cache_root()))
    verifier = registry.get("math")
    data = build_task_data(load_config(None, our_overrides(1, 1, args.group, args.tokens, "fp32", Path("."))))
    rows = [row for step in range(args.steps) for row in data.rl_batch(step, PROMPTS)]

    def math_reward(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [v.reward for v in verifier.verify(texts, answer)]

    # Row k * PROMPTS + i is prompt i of step k; no shuffling, so TRL sees our per-step batches.
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r.prompt}], "answer": r.answer} for r in rows])
    config = GRPOConfig(
        output_dir=args.out_dir, use_vllm=False, bf16=args.precision == "bf16", use_cpu=True, report_to="none", seed=0,
        beta=BETA, num_generations=args.group, max_completion_length=args.tokens,
        per_device_train_batch_size=PROMPTS * args.group, gradient_accumulation_steps=1, num_iterations=1,
        temperature=1.0, top_p=1.0, top_k=0, generation_kwargs={"min_new_tokens": args.tokens},
        learning_rate=LR, max_steps=args.steps, logging_steps=1, save_strategy="no",
        shuffle_dataset=False, loss_type="dapo", model_init_kwargs={"dtype": torch.float32},
        gradient_checkpointing=args.trl_checkpointing == "on",
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trainer = GRPOTrainer(model=model_dir, reward_funcs=math_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)

    timers = PhaseTimers()
    _common_timers(timers)
    seen_prompt_ids: list[list[int]] = []
    original_generate = trainer._generate_single_turn

    def generate(prompt_ids, *a, **kw):
        seen_prompt_ids.extend(list(p) for p in prompt_ids)
        return original_generate(prompt_ids, *a, **kw)

    trainer._generate_single_turn = timers.wrap("generate", generate)
    trainer._calculate_rewards = timers.wrap("verify", trainer._calculate_rewards)
    trainer._get_per_token_logps_and_entropies = _logprob_timer(timers, trainer._get_per_token_logps_and_entropies)
    step_s: list[float] = []
    lengths: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            step_s.append(time.perf_counter() - self.started)
            timers.next_step()

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    trainer.add_callback(StepTimer())
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    ours = [encode_prompt(tokenizer, r.prompt) for r in rows[:PROMPTS] for _ in range(args.group)]
    return {"step_s": median_after_first(step_s), "steps_s": [round(s, 3) for s in step_s], **timers.medians(PHASES),
            "completion_len": lengths, "same_prompt_ids": seen_prompt_ids[: len(ours)] == ours,
            "optim": str(config.optim), "wall_s": round(wall, 1)}


def child_main(args) -> int:
    """One side, one setting, in this process; prints one JSON line with its peak memory."""
    load_before = os.getloadavg()[0]
    result = run_ours(args) if args.child == "ours" else run_trl(args)
    status = Path("/proc/self/status").read_text()
    hwm_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    print(json.dumps({**result, "peak_rss_gb": round(hwm_kb / 2**20, 2),
                      "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}))
    return 0


def run_side(side: str, args, group: int, tokens: int, steps: int, tmp: Path) -> dict:
    out = tmp / f"{side}-g{group}-l{tokens}"
    cmd = [sys.executable, __file__, "--child", side, "--group", str(group), "--tokens", str(tokens),
           "--steps", str(steps), "--threads", str(args.threads), "--precision", args.precision, "--out-dir", str(out),
           "--trl-checkpointing", args.trl_checkpointing]
    print(f"--- {side}: G={group} L={tokens}, {steps} steps, {args.threads} threads, {args.precision}",
          file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the machine's bound -------------------------------------------------------------------------

def measure_machine(threads: int) -> dict[str, float]:
    """Best-of-5 matmul rate at the training forward's shapes (FLOP/s) and memory read bandwidth
    over 1 GiB (bytes/s), with the benchmark's thread count."""
    import torch

    torch.set_num_threads(threads)

    def best(fn, reps=5) -> float:
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    rates = []
    for m, k, n in ((832, 576, 1536), (832, 1536, 576), (512, 576, 49152)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        rates.append(2 * m * k * n / best(lambda: a @ b))
    big = torch.ones(2**28)  # 1 GiB of float32
    bandwidth = big.numel() * 4 / best(lambda: big.sum())
    return {"flops": statistics.median(rates), "bandwidth": bandwidth}


def step_cost(config: dict, prompt_len: int, group: int, tokens: int, shared_prefix: bool) -> dict[str, dict[str, float]]:
    """FLOP and bytes of one GRPO step's phases for a Llama-shaped model, full fine-tuning in fp32:
    generation (prefill, then one token per step for the whole batch, every weight read each step),
    the reference forward, the policy forward + backward (3x a forward), the optimiser (AdamW reads
    and writes parameters and two moments and reads gradients). `shared_prefix`: prompts prefilled
    and trained once per group (ours) instead of once per completion."""
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * config.get("head_dim", d // config["num_attention_heads"])
    vocab = config["vocab_size"]
    body = layers * (2 * d * d + 2 * d * kv + 3 * d * ff)  # q, o, k, v, gate, up, down
    head = vocab * d
    params = body + head  # tied embeddings: the LM head is the embedding
    batch, prompts = PROMPTS * group, PROMPTS if shared_prefix else PROMPTS * group
    prefill_tokens = prompts * prompt_len

    def attention(queries: int, context: float) -> float:  # QK^T and AV: 4 * d * context per query
        return 4 * d * context * queries * layers

    prefill = 2 * body * prefill_tokens + 2 * head * prompts + attention(prefill_tokens, prompt_len / 2)
    decode = tokens * (2 * params * batch + attention(batch, prompt_len + tokens / 2))
    decode_bytes = tokens * (4 * params + batch * 2 * kv * layers * 4 * (prompt_len + tokens / 2))
    train_tokens = prefill_tokens + batch * tokens
    forward = 2 * body * train_tokens + 2 * head * batch * tokens + attention(batch * tokens, prompt_len + tokens / 2)
    return {
        "generate": {"flop": prefill + decode, "bytes": 4 * params + decode_bytes},
        "ref": {"flop": forward, "bytes": 4 * params},
        "policy": {"flop": 3 * forward, "bytes": 3 * 4 * params},
        "optimizer": {"flop": 10 * params, "bytes": 7 * 4 * params},
    }


def bound_seconds(cost: dict[str, dict[str, float]], machine: dict[str, float]) -> float:
    return sum(max(c["flop"] / machine["flops"], c["bytes"] / machine["bandwidth"]) for c in cost.values())


# --- the report ------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per side at the default setting")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, the same for both sides")
    parser.add_argument("--order", default="trl,ours", help="which side runs first: trl,ours or ours,trl")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--trl-checkpointing", choices=("on", "off"), default="on",
                        help="TRL's gradient checkpointing: on is GRPOConfig's default, off its fastest setting")
    parser.add_argument("--scaling", action="store_true", help="also G = 8, 16 (L = 64) and L = 128, 256 (G = 4)")
    parser.add_argument("--grid", action="store_true", help="with --scaling: every G x L pair instead")
    parser.add_argument("--scaling-steps", type=int, default=2, help="steps per side at each scaling setting")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: run our side alone at the default setting, 3 steps, and print the N "
                             "operators of step 2 that take the most CPU time of their own")
    parser.add_argument("--child", choices=("ours", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--group", type=int, default=GROUP, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=NEW_TOKENS, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if args.profile:
        args.child, args.steps = "ours", 3
        with tempfile.TemporaryDirectory(prefix="grpo-step-profile-") as tmp:
            args.out_dir = tmp
            return child_main(args)
    order = args.order.split(",")
    if sorted(order) != ["ours", "trl"]:
        parser.error(f"--order must name trl and ours once each, got {args.order!r}")

    from pipeline.data import build_task_data
    from pipeline.models import cache_root, smollm2_directory, load_tokenizer, ModelSource
    from pipeline.tokens import encode_prompt

    invocation = time.perf_counter()
    model_dir = smollm2_directory(cache_root())
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = load_tokenizer(ModelSource("local", str(model_dir)))
    data = build_task_data(load_config(None, our_overrides(1, 1, GROUP, NEW_TOKENS, "fp32", Path("."))))
    prompt_len = statistics.mean(len(encode_prompt(tokenizer, r.prompt)) for r in data.rl_batch(0, PROMPTS))
    machine = measure_machine(args.threads)
    print(f"machine: matmul {machine['flops'] / 1e9:.0f} GFLOP/s, memory read {machine['bandwidth'] / 1e9:.1f} GB/s "
          f"({args.threads} threads); load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    settings = [(GROUP, NEW_TOKENS, args.steps)]
    if args.scaling:
        points = ([(g, l) for g in (4, 8, 16) for l in (64, 128, 256)] if args.grid
                  else [(8, 64), (16, 64), (4, 128), (4, 256)])
        settings += [(g, l, args.scaling_steps) for g, l in points if (g, l) != (GROUP, NEW_TOKENS)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="grpo-step-bench-") as tmp:
        for group, tokens, steps in settings:
            result = {side: run_side(side, args, group, tokens, steps, Path(tmp)) for side in order}
            ours_cost = step_cost(config, prompt_len, group, tokens, shared_prefix=True)
            trl_cost = step_cost(config, prompt_len, group, tokens, shared_prefix=False)
            rows.append({"group": group, "tokens": tokens, "steps": steps, **result,
                         "ratio": round(result["trl"]["step_s"] / result["ours"]["step_s"], 3),
                         "bound_s": {"ours": round(bound_seconds(ours_cost, machine), 2),
                                     "trl": round(bound_seconds(trl_cost, machine), 2)},
                         "flop": {k: sum(c["flop"] for c in cost.values()) for k, cost in (("ours", ours_cost), ("trl", trl_cost))},
                         "bytes": {k: sum(c["bytes"] for c in cost.values()) for k, cost in (("ours", ours_cost), ("trl", trl_cost))}})

    first = rows[0]
    ratio = first["ratio"]
    print()
    print(f"order {args.order}, {args.threads} threads, {args.precision}, TRL gradient checkpointing "
          f"{args.trl_checkpointing}, medians of steps 2..N; "
          f"machine {machine['flops'] / 1e9:.0f} GFLOP/s, {machine['bandwidth'] / 1e9:.1f} GB/s")
    for side in ("ours", "trl"):
        r = first[side]
        parts = ", ".join(f"{k} {r.get(k, 0):.2f}" for k in PHASES)
        print(f"{side:5s} s/step {r['step_s']:6.2f}  ({parts}; other "
              f"{r['step_s'] - sum(r.get(k, 0) for k in PHASES):.2f})  peak RSS {r['peak_rss_gb']:.2f} GB  "
              f"load {r['load']}  steps {r['steps_s']}")
    print(f"ratio  {ratio:.2f}x  (target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'}); "
          f"same prompt ids: {first['trl'].get('same_prompt_ids')}; TRL optimiser {first['trl'].get('optim')}; "
          f"our decode step: {', '.join(first['ours'].get('decode_step', []))}")
    print()
    print("  G    L | ours s/step  TRL s/step  TRL/ours | bound s (ours)  ours/bound  TRL/bound | peak RSS ours  TRL")
    for r in rows:
        o, t, b = r["ours"]["step_s"], r["trl"]["step_s"], r["bound_s"]["ours"]
        print(f"{r['group']:3d} {r['tokens']:4d} | {o:11.2f} {t:11.2f} {r['ratio']:9.2f} | {b:14.2f} {o / b:11.1f} "
              f"{t / r['bound_s']['trl']:10.1f} | {r['ours']['peak_rss_gb']:10.2f} GB {r['trl']['peak_rss_gb']:4.2f} GB")
    print(json.dumps({"threads": args.threads, "precision": args.precision, "order": args.order, "ratio": ratio,
                      "trl_checkpointing": args.trl_checkpointing,
                      "target_met": ratio >= TARGET, "machine": machine, "prompt_len": prompt_len, "rows": rows,
                      "invocation_s": round(time.perf_counter() - invocation, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
