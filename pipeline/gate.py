"""The gate stage: the measurements a campaign promotes a model on, and the decision.

    python -m pipeline.gate --config FILE --init CANDIDATE_DIR [--input reference=DIR]

It measures the candidate (a round's best policy) on the run's held-out split (greedy accuracy,
as the evaluate stage does), on every guard evaluation set of `gates.guard_sets` (the SFT
demonstrations' likelihood, another task's accuracy: the alignment tax) and, with a reference,
the KL from it (nats per token on samples of held-out prompts). It prints and writes the numbers
(`<output_dir>/gate/metrics.json`); `gate_decision` compares them with the last promoted model's.

Importing this module loads no torch: the flows call `gate_decision` on the numbers alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping

from pipeline.stages import stage_main

__all__ = ["measure", "gate_decision", "HELDOUT"]

HELDOUT = "heldout_accuracy"


def measure(cfg, init: str | None = None, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    import torch

    from errors import DataError
    from pipeline.data import build_task_data
    from pipeline.evaluate import heldout_accuracy
    from pipeline.forward import completion_logprobs, mean_token_logprob
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
    from pipeline.rollout import SamplingParams, make_engine
    from pipeline.scoring import Scorer
    from pipeline.tokens import encode_demonstration, encode_prompt, pack, pad_rows

    torch.set_num_threads(cfg.threads)
    source = resolve_model(init or cfg.model.name, cfg.model)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed).eval()
    engine = make_engine(cfg.rollout, tokenizer, model=model, model_path=source.path)
    tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    data = build_task_data(cfg)
    metrics: dict[str, float] = {}
    metrics[HELDOUT] = heldout_accuracy(engine, tokenizer, data.eval_rows, Scorer(cfg, data.verifier_names()), tokens,
                                        data.system)["accuracy"]
    for guard in cfg.gates.guard_sets:
        if guard.kind == "sft_likelihood":
            if not data.sft_rows:
                raise DataError(f"gates.guard_sets: {guard.name!r} measures the SFT demonstrations' likelihood, "
                                "and the task has none (task.sft_size, or task.sft for a dataset)")
            demos = [encode_demonstration(tokenizer, r.prompt, r.response, cfg.sft.max_length, data.system)
                     for r in data.sft_rows[: guard.limit]]
            metrics[guard.name] = mean_token_logprob(model, demos, tokenizer.pad_token_id, batch_size=64)
        else:
            other = build_task_data(cfg.model_copy(update={"task": guard.task}))
            metrics[guard.name] = heldout_accuracy(engine, tokenizer, other.eval_rows,
                                                   Scorer(cfg, other.verifier_names()), tokens, other.system)["accuracy"]
    if inputs and inputs.get("reference"):
        reference_source = resolve_model(inputs["reference"], cfg.model)
        reference = load_causal_lm(reference_source, cfg.model, tokenizer, seed=cfg.seed).eval()
        rows = data.eval_rows[: cfg.gates.kl_prompts]
        samples = engine.generate([encode_prompt(tokenizer, r.prompt, data.system) for r in rows], 1,
                                  SamplingParams(temperature=1.0, max_new_tokens=tokens, seed=cfg.seed))
        batch = pack(samples.prompt_ids, samples.completion_ids, tokenizer.pad_token_id)
        with torch.no_grad():
            ref = completion_logprobs(reference, batch)  # (N, Tc)
        mask = batch.completion_mask.bool()
        sampled = pad_rows(samples.logprobs, mask.shape[1])
        # E_candidate[log p_c - log p_ref] per sampled token: the KL's Monte Carlo estimate (k1).
        metrics["kl"] = float(((sampled - ref) * mask).sum() / mask.sum().clamp(min=1))
    engine.close()
    out = cfg.output_path / "gate"
    out.mkdir(parents=True, exist_ok=True)
    result = {"candidate": init or cfg.model.name, "reference": (inputs or {}).get("reference"), "metrics": metrics}
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


def gate_decision(candidate: Mapping[str, float], promoted: Mapping[str, float], gates) -> tuple[bool, list[str]]:
    """(passed, the reasons it did not): held-out at least the promoted model's plus the margin, no
    guard set below the promoted model's by more than its tolerance, the KL within its bound."""
    reasons = []
    need = promoted[HELDOUT] + gates.margin
    if candidate[HELDOUT] < need:
        reasons.append(f"held-out accuracy {candidate[HELDOUT]:.4g} < {need:.4g} (last promoted "
                       f"{promoted[HELDOUT]:.4g} + margin {gates.margin:g})")
    for guard in gates.guard_sets:
        if guard.name not in promoted:  # the promoted model was measured before this set existed
            continue
        floor = promoted[guard.name] - guard.tolerance
        if candidate[guard.name] < floor:
            reasons.append(f"{guard.name} {candidate[guard.name]:.4g} < {floor:.4g} (last promoted "
                           f"{promoted[guard.name]:.4g} - tolerance {guard.tolerance:g})")
    if gates.kl_max is not None and candidate.get("kl") is not None and candidate["kl"] > gates.kl_max:
        reasons.append(f"KL from the reference {candidate['kl']:.4g} > gates.kl_max {gates.kl_max:g}")
    return not reasons, reasons


def main(argv: list[str] | None = None) -> int:
    return stage_main("gate", measure, argv)


if __name__ == "__main__":
    sys.exit(main())
