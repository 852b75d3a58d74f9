"""The round flow: SFT -> GRPO -> evaluate, each stage a subprocess, checkpoint paths passed on.

Thin by design: it writes the resolved config once, launches `python -m pipeline.trainers.<stage>`
for each configured stage, and hands each stage's final model to the next. A subprocess per stage
gives reliable timeouts and cancellation, and frees a stage's memory before the next starts.
"""

import json
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, task

from pipeline.config import RunConfig

__all__ = ["round_flow", "StageFailed", "run_stage_subprocess"]


class StageFailed(RuntimeError):
    """A stage's process exited non-zero; the message carries the end of its stderr."""


def run_stage_subprocess(module: str, args: list[str]) -> dict[str, Any]:
    """Run `python -m <module> <args>`, stream its stderr through, return the JSON it prints last."""
    cmd = [sys.executable, "-m", module, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tail: deque[str] = deque(maxlen=20)

    def forward() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()

    pump = threading.Thread(target=forward, daemon=True)
    pump.start()
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    code = proc.wait()
    pump.join()
    if code != 0:
        errors = [line for line in tail if line.startswith("error:")]
        detail = errors[-1] if errors else "\n".join(list(tail)[-5:])
        raise StageFailed(f"{module} exited with code {code}: {detail}")
    last = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(last[-1]) if last else {}


@task(name="sft")
def sft_stage(config_file: str, init: str | None) -> dict[str, Any]:
    return run_stage_subprocess("pipeline.trainers.sft", ["--config", config_file] + (["--init", init] if init else []))


@task(name="grpo")
def grpo_stage(config_file: str, init: str | None) -> dict[str, Any]:
    return run_stage_subprocess("pipeline.trainers.grpo", ["--config", config_file] + (["--init", init] if init else []))


@task(name="evaluate")
def evaluate_stage(config_file: str, models: dict[str, str]) -> dict[str, Any]:
    args = ["--config", config_file] + [f"--model={name}={path}" for name, path in models.items()]
    return run_stage_subprocess("pipeline.evaluate", args)


@flow(name="round", log_prints=True)
def round_flow(config: RunConfig, init: str | None = None) -> dict[str, Any]:
    """One round of the configured stages; returns each stage's result and the round's model."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))

    results: dict[str, Any] = {}
    models: dict[str, str] = {}
    model = init
    if "sft" in config.stages:
        results["sft"] = sft_stage(str(config_file), model)
        model = models["sft"] = results["sft"]["model"]
    if "grpo" in config.stages:
        results["grpo"] = grpo_stage(str(config_file), model)
        model = models["grpo"] = results["grpo"]["model"]
    if "evaluate" in config.stages:
        results["evaluate"] = evaluate_stage(str(config_file), models or {"model": model or config.model.name})
        for name, r in results["evaluate"].items():
            if isinstance(r, dict) and "accuracy" in r:
                print(f"held-out accuracy after {name}: {100 * r['accuracy']:.1f}% (n={r['n']})")
    results["model"] = model
    (out / "round.json").write_text(json.dumps(results, indent=1))
    return results
