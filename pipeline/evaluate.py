"""Held-out accuracy: greedy decoding on the evaluation split, scored by the rows' verifiers.

    python -m pipeline.evaluate --config FILE [--input NAME=DIR ...] [key=value ...]

The evaluate stage scores every policy it is given (`--input NAME=DIR`; the round passes each
stage's policy), or `--init DIR`, or the config's model, and writes <output_dir>/eval/results.json.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Mapping

from pipeline.data import PromptRow
from pipeline.rollout import SamplingParams
from pipeline.rollout.collect import score_rollouts
from pipeline.scoring import Scorer
from pipeline.stages import stage_main
from pipeline.tokens import encode_prompt

__all__ = ["heldout_accuracy", "run_evaluate"]


def heldout_accuracy(engine, tokenizer, rows: list[PromptRow], scorer: Scorer, max_new_tokens: int,
                     system: str | None = None) -> dict[str, Any]:
    """A row counts as correct when its verdict is `ok` with a positive reward."""
    prompts = [encode_prompt(tokenizer, r.prompt, system) for r in rows]
    rollouts = engine.generate(prompts, 1, SamplingParams(max_new_tokens=max_new_tokens, greedy=True))
    _, verdicts = score_rollouts(scorer, rows, rollouts, system)
    correct = sum(v.status == "ok" and v.reward > 0 for v in verdicts)
    statuses = Counter(v.status for v in verdicts)
    return {
        "accuracy": correct / len(rows),
        "n": len(rows),
        **{f"eval_{status}": count for status, count in sorted(statuses.items())},
        "samples": [
            {"prompt": r.prompt, "completion": t, "answer": r.answer, "reward": v.reward, "status": v.status}
            for r, t, v in list(zip(rows, rollouts.texts, verdicts))[:5]
        ],
    }


def run_evaluate(cfg, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Held-out accuracy of each named model (`inputs`, else `init`, else the config's model);
    written to <output_dir>/eval/results.json."""
    import json

    import torch

    from pipeline.data import build_task_data
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import make_engine

    models = dict(inputs or {}) or {"model": init or cfg.model.name}
    torch.set_num_threads(cfg.threads)
    data = build_task_data(cfg)
    scorer = Scorer.for_task(cfg, data)
    results: dict[str, Any] = {}
    for name, path in models.items():
        source = resolve_model(path, cfg.model)
        tokenizer = load_tokenizer(source)
        model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed)
        engine = make_engine(cfg.rollout, tokenizer, model=model, model_path=source.path)
        tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
        results[name] = {"model": path, **heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, tokens, data.system)}
        engine.close()
    out = cfg.output_path / "eval" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return {name: {"accuracy": r["accuracy"], "n": r["n"]} for name, r in results.items()}


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run_evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
