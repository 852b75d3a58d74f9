"""Tokens per second of each rollout engine on SmolLM2-135M-Instruct, in one invocation.

    python bench/rollout_throughput.py [--engines hf,vllm,vllm_server] [--shapes 8x4,16x8]
                                       [--tokens 64] [--repeats 3] [--threads 2]

Each engine runs in a process of its own, one after the other (`vllm`, vLLM in the trainer's
process, from the vLLM virtualenv that `make vllm` builds; `vllm_server` starts a server from it),
with the same thread count (OMP_NUM_THREADS and torch's), fp32, temperature 1, top_p 1. A shape
PxG is P prompts of the built-in arithmetic task (through the chat template) with G completions
each, exactly `tokens` new tokens per completion (min_new_tokens = max). After one warm-up call
per shape, each call is timed `repeats` times; tokens/s = P * G * tokens / the median seconds.
The engine's start-up is reported apart. Exits 0: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(engine: str, shapes: list[tuple[int, int]], tokens: int, repeats: int, threads: int) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from pipeline.config import HFRolloutConfig, ModelConfig, VLLMRolloutConfig, VLLMServerRolloutConfig
    from pipeline.data import build_task_data
    from pipeline.config import load_config
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import SamplingParams, make_engine
    from pipeline.tokens import encode_prompt

    cfg = ModelConfig(name="smollm2-135m")
    source = resolve_model(cfg.name, cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer)
    rollout = {"hf": HFRolloutConfig, "vllm": VLLMRolloutConfig, "vllm_server": VLLMServerRolloutConfig}[engine]()
    started = time.perf_counter()
    rollouts = make_engine(rollout, tokenizer, model=model, model_path=source.path)
    startup = time.perf_counter() - started
    rows = build_task_data(load_config(None, ["model.name=smollm2-135m"])).rl_batch(0, max(p for p, _ in shapes))
    out = {"engine": engine, "startup_s": round(startup, 1), "shapes": {}}
    for prompts, group in shapes:
        ids = [encode_prompt(tokenizer, r.prompt) for r in rows[:prompts]]
        sampling = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=tokens, min_new_tokens=tokens, seed=0)
        rollouts.generate(ids, group, sampling)  # warm-up
        seconds = []
        for r in range(repeats):
            t = time.perf_counter()
            result = rollouts.generate(ids, group, dataclasses.replace(sampling, seed=r + 1))
            seconds.append(time.perf_counter() - t)
            assert all(len(c) == tokens for c in result.completion_ids), "a completion stopped early"
        median = statistics.median(seconds)
        out["shapes"][f"{prompts}x{group}"] = {"seconds": [round(s, 2) for s in seconds],
                                               "tokens_per_s": round(prompts * group * tokens / median, 1)}
    rollouts.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="hf,vllm,vllm_server")
    parser.add_argument("--shapes", default="8x4,16x8")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, shapes, args.tokens, args.repeats, args.threads)))
        return 0

    vllm_python = os.environ.get("RLVR_VLLM_PYTHON") or str(REPO / ".venv-vllm" / "bin" / "python")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "RLVR_VLLM_PYTHON": vllm_python}
    results = {}
    for engine in args.engines.split(","):
        python = vllm_python if engine == "vllm" else sys.executable
        cmd = [python, str(Path(__file__).resolve()), "--worker", engine, "--shapes", args.shapes,
               "--tokens", str(args.tokens), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"{engine}: exited with {proc.returncode}", file=sys.stderr)
            continue
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"\nSmolLM2-135M-Instruct, fp32, {args.tokens} new tokens per completion, {args.threads} threads, "
          f"median of {args.repeats} calls")
    names = [f"{p}x{g}" for p, g in shapes]
    print("| engine | start-up s | " + " | ".join(f"{n} tok/s" for n in names) + " | " +
          " | ".join(f"{n} vs hf" for n in names) + " |")
    print("|---" * (2 + 2 * len(names)) + "|")
    base = results.get("hf", {}).get("shapes", {})
    for engine, r in results.items():
        speeds = [r["shapes"][n]["tokens_per_s"] for n in names]
        ratios = [f"{s / base[n]['tokens_per_s']:.2f}x" if n in base else "-" for s, n in zip(speeds, names)]
        print(f"| {engine} | {r['startup_s']} | " + " | ".join(str(s) for s in speeds) + " | " + " | ".join(ratios) + " |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
