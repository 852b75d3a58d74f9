"""A stage that lives outside the project, for the test that adds a stage through the table alone:
it takes the round's policy, adds seeded noise to every weight, and hands the copy on.

    python -m tests.flows.noisy_copy_stage --config FILE --init DIR [--input reward_model=DIR]
"""

import sys

import torch

from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.stages import StageSpec, stage_main

SPEC = StageSpec("tests.flows.noisy_copy_stage", section=None, directory="noisy_copy", consumes=("reward_model",))


def noisy_copy(cfg, init=None, inputs=None):
    source = resolve_model(init or cfg.model.name, cfg.model)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 1e-3)
    out = cfg.output_path / SPEC.directory / "final"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"model": str(out), "saw_inputs": sorted(inputs or {})}


if __name__ == "__main__":
    sys.exit(stage_main("noisy_copy", noisy_copy, spec=SPEC))
