"""Held-out accuracy: greedy decoding on the evaluation split, scored by the rows' verifiers."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.data import PromptRow
from pipeline.rollout import SamplingParams
from pipeline.scoring import Scorer
from pipeline.tokens import encode_prompt

__all__ = ["heldout_accuracy"]


def heldout_accuracy(engine, tokenizer, rows: list[PromptRow], scorer: Scorer, max_new_tokens: int,
                     system: str | None = None) -> dict[str, Any]:
    """A row counts as correct when its verdict is `ok` with a positive reward."""
    prompts = [encode_prompt(tokenizer, r.prompt, system) for r in rows]
    rollouts = engine.generate(prompts, 1, SamplingParams(max_new_tokens=max_new_tokens, greedy=True))
    verdicts = scorer.score(rollouts.texts, [r.answer for r in rows], [r.verifier for r in rows],
                            [r.prompt for r in rows], system)
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


def run_evaluate(cfg, models: dict[str, str]) -> dict[str, Any]:
    """Held-out accuracy of each named model; written to <output_dir>/eval/results.json."""
    import json

    import torch

    from pipeline.data import build_task_data
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import make_engine

    torch.set_num_threads(cfg.threads)
    data = build_task_data(cfg)
    scorer = Scorer(cfg, data.verifier_names())
    results: dict[str, Any] = {}
    for name, path in models.items():
        source = resolve_model(path, cfg.model)
        tokenizer = load_tokenizer(source)
        model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed)
        engine = make_engine(cfg.rollout, model, tokenizer)
        tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
        results[name] = {"model": path, **heldout_accuracy(engine, tokenizer, data.eval_rows, scorer, tokens, data.system)}
    out = cfg.output_path / "eval" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return {name: {"accuracy": r["accuracy"], "n": r["n"]} for name, r in results.items()}


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.evaluate --config FILE --model NAME=DIR [--model ...] [key=value ...]`."""
    import argparse
    import json
    import sys

    from pipeline.config import load_config
    from errors import UserError

    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description="Held-out accuracy of models.")
    parser.add_argument("--config", help="run config (YAML); defaults when omitted")
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR (repeatable); default: model.name")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model) or {"model": cfg.model.name}
        result = run_evaluate(cfg, models)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"stage": "evaluate", **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
