"""The rejection_sampling stage (rejection-sampling fine-tuning, expert iteration): the best of K
samples of the input policy, when it scores at least a threshold, becomes an SFT demonstration.

    python -m pipeline.generation.rejection --config FILE [--init POLICY_DIR] [--input reward_model=DIR] [key=value ...]

Each sample is scored by its row's verifier (or `rejection_sampling.verifier`). Of a prompt's
scored samples that stopped by themselves (a truncated one would teach stopping where the model
did not) and have some text, up to `keep` distinct ones scoring at least `threshold` are kept,
best first (ties in sampling order).

Writes `<output_dir>/rejection_sampling/`: demonstrations.jsonl (`{prompt, response, score}`),
every sample with its score (`train.samples.jsonl`), counts per chunk (metrics.jsonl), summary.json; prints
`{"stage": "rejection_sampling", "demonstrations": <that directory>, ...}`. The sft stage trains on
it through `--input demonstrations=DIR` instead of the task's demonstrations.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping, Sequence

from errors import DataError
from pipeline.config import RunConfig
from pipeline.generation.sampling import sample_streams, scored_candidates, write_jsonl
from pipeline.stages import stage_main

__all__ = ["run_rejection_sampling", "best_of_k", "demonstration_rows"]

STAGE = "rejection_sampling"


def best_of_k(candidates: Sequence[tuple[str, float]], threshold: float, keep: int) -> list[tuple[str, float]]:
    """Up to `keep` (text, score) candidates scoring at least `threshold`, best first; candidates
    that tie keep their order."""
    return sorted((c for c in candidates if c[1] >= threshold), key=lambda c: -c[1])[:keep]


def demonstration_rows(lines: list[dict[str, Any]], threshold: float, keep: int,
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """SFT rows of sampled prompts (lines of a samples file), and what became of them."""
    rows: list[dict[str, Any]] = []
    counts = {"prompts": len(lines), "prompts_accepted": 0, "samples": 0, "samples_masked": 0,
              "samples_truncated": 0}
    scores: list[float] = []
    for line in lines:
        samples = line["samples"]
        counts["samples"] += len(samples)
        counts["samples_masked"] += sum(s["score"] is None for s in samples)
        counts["samples_truncated"] += sum(bool(s["truncated"]) for s in samples)
        scores += [s["score"] for s in samples if s["score"] is not None]
        accepted = best_of_k(scored_candidates(samples, lambda s: not s["truncated"]), threshold, keep)
        counts["prompts_accepted"] += bool(accepted)
        rows += [{"prompt": line["prompt"], "response": text, "score": score} for text, score in accepted]
    counts["rows"] = len(rows)
    counts["score_mean"] = sum(scores) / len(scores) if scores else None
    return rows, counts


def run_rejection_sampling(cfg: RunConfig, init: str | None = None,
                           inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    r = cfg.rejection_sampling
    stage_dir, lines, seconds = sample_streams(cfg, STAGE, init, inputs, {"train": (f"rejection/{cfg.seed}", r.prompts)},
                                               lambda chunk: demonstration_rows(chunk, r.threshold, r.keep)[1])
    rows, counts = demonstration_rows(lines["train"], r.threshold, r.keep)
    if not rows:
        raise DataError(
            f"{STAGE}: none of {counts['prompts']} prompts had a sample scoring at least {STAGE}.threshold="
            f"{r.threshold:g} (mean score {counts['score_mean']}); lower the threshold or raise "
            f"{STAGE}.samples_per_prompt"
        )
    write_jsonl(stage_dir / "demonstrations.jsonl", rows)
    summary = {**counts, "generation_seconds": seconds}
    (stage_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return {"demonstrations": str(stage_dir), **summary}


def main(argv: list[str] | None = None) -> int:
    return stage_main(STAGE, run_rejection_sampling, argv)


if __name__ == "__main__":
    sys.exit(main())
