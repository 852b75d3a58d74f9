"""Checks a run's inputs before any stage starts: the model exists, the data rows validate, every
verifier named is known. A bad input fails here, in seconds, with one clear message."""

from __future__ import annotations

from pipeline.config import RunConfig

__all__ = ["check_inputs"]


def check_inputs(cfg: RunConfig, init: str | None = None) -> None:
    from pipeline.data import build_task_data
    from pipeline.metrics import check_trackers
    from pipeline.models import resolve_model
    from pipeline.scoring import Scorer

    check_trackers(cfg.report_to)
    resolve_model(init or cfg.model.name, cfg.model)
    data = build_task_data(cfg)
    # The sampling stages may score with a verifier of their own (a judge, a composite).
    chosen = {getattr(cfg, stage).verifier for stage in ("generate_preferences", "rejection_sampling")
              if stage in cfg.stages and getattr(cfg, stage).verifier}
    Scorer.for_task(cfg, data, extra=chosen)
