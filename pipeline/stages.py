"""THE stage table, and the command-line entry every stage shares.

A stage is a module run as

    python -m <module> --config FILE [--init POLICY_DIR] [--input NAME=DIR ...] [key.sub=value ...]

that prints one JSON line last: its result, whose `produces` keys name the artefacts it hands on
("model" is the policy). Everything that needs to know the stages reads `STAGES`: the config's
`stages` field (names are checked against it, and the Prefect form offers them), the round flow
(order, inputs, cache keys, launcher), and the command line (`rlvr stage NAME`).

Adding a stage is its module (calling `stage_main`), its config class with a `RunConfig` field,
and one row here. A plugin package adds a row through the entry-point group `rlvr.stages` (its
value names a `StageSpec`), and a test through `register_stage`.

The table is plain data: this module imports neither torch nor Prefect.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from errors import ConfigError, PipelineError

__all__ = ["StageSpec", "STAGES", "ENTRY_POINT_GROUP", "stage_spec", "register_stage", "load_plugin_stages",
           "stage_main", "StageRun"]


@dataclass(frozen=True)
class StageSpec:
    """One row of the stage table.

    module: run as `python -m <module>` (or under the execution launcher when `distributed`).
    section: the RunConfig field holding the stage's settings; None when it has none.
    directory: the stage's folder under output_dir (metrics.jsonl, checkpoints, final/).
    consumes: artefacts of earlier stages of the round it takes as `--input NAME=DIR` when the
        round has them (PPO: "reward_model"; the gate: the "reference" a campaign gives it);
        without one it falls back on its config. The policy always comes as `--init`.
    produces: keys of its result that name artefacts for later stages; "model" is the policy.
    reads: other config sections it reads too (they join its cache key: the reward model's path
        for PPO, `eval` for stages that evaluate as they train).
    evaluates: it takes every policy of the round as `--input NAME=DIR` instead of `--init`.
    distributed: it may run under a distributed launcher (`accelerate launch`) on many devices.
    """

    module: str
    section: str | None
    directory: str
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ("model",)
    reads: tuple[str, ...] = ()
    evaluates: bool = False
    distributed: bool = True


# Stage name -> its row. A round runs the stages its config lists, in that order.
STAGES: dict[str, StageSpec] = {
    "sft": StageSpec("pipeline.trainers.sft", "sft", "sft", consumes=("demonstrations",), reads=("eval",)),
    "reward_model": StageSpec("pipeline.trainers.reward_model", "reward_model", "reward_model",
                              consumes=("preferences",), produces=("reward_model",)),
    "ppo": StageSpec("pipeline.trainers.ppo", "ppo", "ppo", consumes=("reward_model",), produces=("model", "value_model"),
                     reads=("reward_model", "eval")),
    "dpo": StageSpec("pipeline.trainers.dpo", "dpo", "dpo", consumes=("preferences",)),
    "kto": StageSpec("pipeline.trainers.kto", "kto", "kto", consumes=("preferences",), distributed=False),
    "grpo": StageSpec("pipeline.trainers.grpo", "grpo", "grpo", reads=("eval",)),
    "generate_preferences": StageSpec("pipeline.generation.preferences", "generate_preferences", "generate_preferences",
                                      consumes=("reward_model",), produces=("preferences",), reads=("reward_model",),
                                      distributed=False),
    "rejection_sampling": StageSpec("pipeline.generation.rejection", "rejection_sampling", "rejection_sampling",
                                    consumes=("reward_model",), produces=("demonstrations",), reads=("reward_model",),
                                    distributed=False),
    "evaluate": StageSpec("pipeline.evaluate", "eval", "eval", produces=(), evaluates=True, distributed=False),
    # A campaign runs it on each round's best policy; it decides nothing itself (pipeline/gate.py).
    "gate": StageSpec("pipeline.gate", "gates", "gate", consumes=("reference",), produces=(), reads=("eval", "sft"),
                      distributed=False),
}


ENTRY_POINT_GROUP = "rlvr.stages"


def stage_spec(name: str) -> StageSpec:
    """The row of a stage; an unknown name is a ConfigError naming the field and the choices."""
    load_plugin_stages()
    if name not in STAGES:
        raise ConfigError(
            f"field stages: unknown stage {name!r} (known: {', '.join(STAGES)}); a new stage needs a row "
            "in pipeline/stages.py:STAGES, or register_stage() in its module"
        )
    return STAGES[name]


def register_stage(name: str, spec: StageSpec) -> StageSpec:
    """Add a row (a plugin's or a test's stage). Re-registering the same row is harmless; another
    row under a taken name is an error, never a silent override."""
    if STAGES.get(name, spec) != spec:
        raise ConfigError(f"stage {name!r} is already in the stage table as {STAGES[name]}")
    STAGES[name] = spec
    return spec


_plugins_loaded = False


def load_plugin_stages() -> None:
    """Merge the rows of installed plugins (entry points in `rlvr.stages`) into the table, once.
    A plugin may not take a built-in's name."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if not isinstance(spec, StageSpec):
            raise ConfigError(f"stage plugin {ep.name!r} ({ep.value}) is a {type(spec).__name__}, not a StageSpec")
        register_stage(ep.name, spec)


# What a stage's entry function is called with: the run config, the policy to start from (None:
# the config's model) and the artefacts of earlier stages by name.
StageRun = Callable[[Any, "str | None", Mapping[str, str]], dict[str, Any]]


def stage_main(name: str, run: StageRun, argv: list[str] | None = None, spec: StageSpec | None = None) -> int:
    """The command line of every stage: parse, load the config, run, print the result as JSON.

    `spec` is the stage's row (default: the table's row of `name`; a stage from outside the
    project passes its own). A mistake in the user's input (or a tripped run-health guard) prints
    one `error:` line and exits with the error's code (2, or 3 for a guard), which the round flow
    never retries.
    """
    spec = spec or stage_spec(name)
    parser = argparse.ArgumentParser(prog=f"python -m {spec.module}", description=f"Run the {name} stage alone.")
    parser.add_argument("--config", help="run config (YAML); defaults when omitted")
    parser.add_argument("--init", help="policy to start from (a directory); default: model.name of the config")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=DIR",
                        help="an artefact of an earlier stage (repeatable)"
                        + (": every policy to evaluate" if spec.evaluates else
                           f"; this stage takes {', '.join(spec.consumes)}" if spec.consumes else ""))
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    try:
        inputs = _parse_inputs(args.input, spec, name)
        from pipeline.config import load_config

        cfg = load_config(args.config, args.overrides, check_stages=False)
        result = run(cfg, args.init, inputs)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps({"stage": name, **result}))
    return 0


def _parse_inputs(items: list[str], spec: StageSpec, name: str) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for item in items:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise ConfigError(f"--input {item!r}: expected NAME=DIR")
        if not spec.evaluates and key not in spec.consumes:
            takes = ", ".join(spec.consumes) or "none"
            raise ConfigError(f"--input {key}: the {name} stage takes no input {key!r} (it takes: {takes})")
        inputs[key] = path
    return inputs
