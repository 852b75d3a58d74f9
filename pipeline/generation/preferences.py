"""The generate_preferences stage: on-policy preference data, as Llama 3's post-training rounds
make it (and RLAIF, with the `judge` verifier).

    python -m pipeline.generation.preferences --config FILE [--init POLICY_DIR] [--input reward_model=DIR] [key=value ...]

For each prompt, K samples of the input policy, each scored by its row's verifier (or by
`generate_preferences.verifier`: the reward model, the judge, a composite). The scored samples
with some text (masked verdicts and blank completions are left out; a text sampled twice counts
once) become one preference row:

- `ranking`: `{prompt, responses, scores, ranking}`, the ranking in tiers of equal score, best
  first (samples that tie are never ordered against each other: they give no pair);
- `best_worst`: `{prompt, chosen, rejected, chosen_score, rejected_score}`: the first best and the
  first worst sample.

A prompt whose scored samples all score the same carries no preference: counted and skipped.

Writes `<output_dir>/generate_preferences/`: train.jsonl and eval.jsonl (rows from `prompts` and
`eval_prompts` prompts of streams of their own; a held-out prompt also drawn for training is
dropped), every sample with its score and status
(`*.samples.jsonl`), metrics per chunk, summary.json; prints `{"stage": "generate_preferences",
"preferences": <that directory>, ...}`. The dpo, reward_model and kto stages read it through
`--input preferences=DIR` instead of `preference.path`.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping, Sequence

from errors import DataError
from pipeline.config import RunConfig
from pipeline.generation.sampling import sample_streams, scored_candidates, write_jsonl
from pipeline.stages import stage_main

__all__ = ["run_generate_preferences", "score_tiers", "preference_row", "preference_rows"]

STAGE = "generate_preferences"


def score_tiers(scores: Sequence[float]) -> list[list[int]]:
    """Indices grouped by equal score, best first: `[0.5, 1, 0.5, 0]` -> `[[1], [0, 2], [3]]`."""
    return [[i for i, s in enumerate(scores) if s == level] for level in sorted(set(scores), reverse=True)]


def preference_row(prompt: str, candidates: Sequence[tuple[str, float]], pairs: str) -> dict[str, Any] | None:
    """One preference row from a prompt's (text, score) candidates; None when all score the same."""
    texts, scores = [t for t, _ in candidates], [s for _, s in candidates]
    if len(set(scores)) < 2:
        return None
    if pairs == "ranking":
        return {"prompt": prompt, "responses": texts, "scores": scores, "ranking": score_tiers(scores)}
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    return {"prompt": prompt, "chosen": texts[best], "rejected": texts[worst], "chosen_score": scores[best],
            "rejected_score": scores[worst]}


def preference_rows(lines: list[dict[str, Any]], pairs: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Preference rows of sampled prompts (lines of a samples file), and what became of them."""
    rows: list[dict[str, Any]] = []
    counts = {"prompts": len(lines), "rows": 0, "pairs": 0, "skipped_equal": 0, "skipped_unscored": 0,
              "samples": 0, "samples_masked": 0, "samples_blank": 0}
    scores: list[float] = []
    for line in lines:
        samples = line["samples"]
        counts["samples"] += len(samples)
        counts["samples_masked"] += sum(s["score"] is None for s in samples)
        counts["samples_blank"] += sum(s["score"] is not None and not s["text"].strip() for s in samples)
        scores += [s["score"] for s in samples if s["score"] is not None]
        candidates = scored_candidates(samples)
        row = preference_row(line["prompt"], candidates, pairs)
        if row is None:
            counts["skipped_equal" if candidates else "skipped_unscored"] += 1
            continue
        rows.append(row)
        tiers = score_tiers([s for _, s in candidates])
        counts["pairs"] += 1 if pairs == "best_worst" else sum(
            len(a) * len(b) for i, a in enumerate(tiers) for b in tiers[i + 1 :])
    counts["rows"] = len(rows)
    counts["score_mean"] = sum(scores) / len(scores) if scores else None
    return rows, counts


def run_generate_preferences(cfg: RunConfig, init: str | None = None,
                             inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    g = cfg.generate_preferences
    streams = {"train": (f"generate/{cfg.seed}", g.prompts), "eval": (f"generate-eval/{cfg.seed}", g.eval_prompts)}
    stage_dir, lines, seconds = sample_streams(cfg, STAGE, init, inputs, streams,
                                               lambda chunk: preference_rows(chunk, g.pairs)[1])
    train, counts = preference_rows(lines["train"], g.pairs)
    # A held-out prompt the training stream drew too (a small task, a small dataset) is not held out.
    seen = {line["prompt"] for line in lines["train"]}
    held, held_counts = preference_rows([line for line in lines["eval"] if line["prompt"] not in seen], g.pairs)
    seen_too = len(lines["eval"]) - held_counts["prompts"]
    if not train:
        raise DataError(
            f"{STAGE}: none of {counts['prompts']} prompts gave a preference row: the K="
            f"{g.samples_per_prompt} samples of {counts['skipped_equal']} all scored the same and those of "
            f"{counts['skipped_unscored']} were masked or blank; raise {STAGE}.samples_per_prompt or the "
            "temperature, or score with a finer verifier"
        )
    if not held:  # the preference stages measure held-out preference accuracy: they need some
        raise DataError(
            f"{STAGE}: none of the {len(lines['eval'])} held-out prompts gave a preference row ({seen_too} were "
            f"drawn for training too, the samples of {held_counts['skipped_equal']} all scored the same); raise "
            f"{STAGE}.eval_prompts"
        )
    write_jsonl(stage_dir / "train.jsonl", train)
    write_jsonl(stage_dir / "eval.jsonl", held)
    summary = {**counts, "eval_rows": held_counts["rows"], "eval_skipped_equal": held_counts["skipped_equal"],
               "eval_dropped_as_seen": seen_too,
               "pairs_kind": g.pairs, "generation_seconds": seconds}
    (stage_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return {"preferences": str(stage_dir), **summary}


def main(argv: list[str] | None = None) -> int:
    return stage_main(STAGE, run_generate_preferences, argv)


if __name__ == "__main__":
    sys.exit(main())
