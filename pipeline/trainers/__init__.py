"""One module per training stage, each runnable alone: `python -m pipeline.trainers.<stage> --config FILE`.

The stages themselves (module, config section, inputs and products) are listed in one place, the
stage table `pipeline.stages.STAGES`. Trainers never import each other: what two of them share
lives in the library (`pipeline.forward`, `pipeline.rollout.collect`, `pipeline.losses`,
`pipeline.trainers.common`).
"""

__all__: list[str] = []
