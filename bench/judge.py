"""The judge verifier (SmolLM2-135M-Instruct with a rubric) against the math verifier's labels on
200 completions of the built-in task: agreement rate, separation, and cost per completion.

    python bench/judge.py [--config configs/tiny.yaml] [--seed 0] [--judge smollm2-135m] [--batch 16]

The completions are samples (temperature 1) of the SFT model on held-out prompts: the first 100
the math verifier scores right and the first 100 it scores wrong, so a judge that always says no
(or always yes) agrees on 50%. Two templates: the rubric alone (the judge must do the arithmetic)
and the rubric with the gold answer shown (a check that the verdict tokens are read as meant).
Reported: agreement at score 0.5, the area under the ROC curve (threshold-free), mean score of
right and wrong completions, masked verdicts, and seconds per completion (loading excluded, shown
apart).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _start import REPO, sft_model

RUBRIC = "The response is the correct result of the arithmetic in the request."
WITH_GOLD = ("Request: {prompt}\nResponse: {completion}\nThe correct result is {reference}.\n\n"
             "Criterion: {criterion}\nDoes the response meet the criterion? Answer Yes or No.")


def labelled_completions(cfg, model_dir: str, per_label: int = 100):
    """(prompt, completion, gold, right) for `per_label` right and `per_label` wrong samples."""
    import torch

    from pipeline.data import build_task_data
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import SamplingParams, make_engine
    from pipeline.rollout.collect import collect
    from pipeline.scoring import Scorer

    torch.set_num_threads(cfg.threads)
    source = resolve_model(model_dir, cfg.model)
    tokenizer = load_tokenizer(source)
    engine = make_engine(cfg.rollout, tokenizer, model=load_causal_lm(source, cfg.model, tokenizer))
    data = build_task_data(cfg)
    c = collect(engine, Scorer(cfg, {"math"}), tokenizer, data.eval_rows, 8,
                SamplingParams(temperature=1.0, max_new_tokens=cfg.rollout.max_new_tokens, seed=7))
    picked = {True: [], False: []}
    for i, (text, verdict) in enumerate(zip(c.rollouts.texts, c.verdicts)):
        row = c.rows[i // 8]
        right = verdict.reward > 0
        if text.strip() and len(picked[right]) < per_label and all(p[1] != text or p[0] != row.prompt for p in picked[right]):
            picked[right].append((row.prompt, text, row.answer, right))
    return picked[True] + picked[False]


def auc(scores: list[float], labels: list[bool]) -> float:
    """Probability that a right completion scores above a wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    from pipeline.config import load_config
    from verifiers import Context, get

    cfg = load_config(args.config, [f"seed={args.seed}"])
    items = labelled_completions(cfg, sft_model(args.config, args.seed, REPO / "bench" / "out" / f"sft-seed{args.seed}"))
    labels = [right for *_, right in items]
    print(f"{len(items)} completions: {sum(labels)} right, {len(labels) - sum(labels)} wrong (math verifier)")
    for name, template in (("rubric alone", None), ("rubric + gold answer", WITH_GOLD)):
        started = time.perf_counter()
        judge = get("judge", model=args.judge, rubric=RUBRIC, batch_size=args.batch,
                    **({"template": template} if template else {}))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        verdicts = judge.verify([c for _, c, _, _ in items], [g for _, _, g, _ in items],
                                [Context(prompt=p) for p, _, _, _ in items])
        per_completion = (time.perf_counter() - started) / len(items)
        ok = [(v.reward, y) for v, y in zip(verdicts, labels) if v.scored]
        scores, ys = [s for s, _ in ok], [y for _, y in ok]
        agree = sum((s > 0.5) == y for s, y in ok) / len(ok) if ok else None
        result = {
            "template": name, "judge": args.judge, "scored": len(ok), "masked": len(items) - len(ok),
            "agreement_at_0.5": agree, "auc": auc(scores, ys) if ok and 0 < sum(ys) < len(ys) else None,
            "mean_score_right": sum(s for s, y in ok if y) / max(sum(ys), 1),
            "mean_score_wrong": sum(s for s, y in ok if not y) / max(len(ys) - sum(ys), 1),
            "says_yes": sum(s > 0.5 for s in scores) / max(len(scores), 1),
            "seconds_per_completion": round(per_completion, 4), "load_seconds": round(load_s, 1),
        }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
