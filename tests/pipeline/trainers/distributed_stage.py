"""Run a stage on CPU processes (gloo) for the distributed tests, optionally under accelerate's
FSDP, with a `length` verifier whose rewards give every group a learning signal:

    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 tests/pipeline/trainers/distributed_stage.py \
        [--fsdp configs/accelerate/fsdp.yaml] pipeline.trainers.grpo --config ... task.verifier=length

accelerate turns FSDP on only for accelerator devices (on CPU it falls back to DDP), while torch's
FSDP2 (`fully_shard`) runs on CPU tensors over gloo. So with `--fsdp` the shipped accelerate
config's `fsdp_config` goes into the environment as `accelerate launch` would put it, and the
process state is switched from multi-CPU to FSDP before the stage builds its Accelerator: the
stage then takes accelerate's FSDP2 path (sharding, sharded checkpoints, the full state dict on
export) unchanged.
"""

import os
import runpy
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # this checkout, not an installed copy


class LengthVerifier:
    """Reward: the completion's length, so an untrained model's groups carry a signal."""

    name = "length"

    def verify(self, completions, references):
        from verifiers import OK, Verdict

        return [Verdict(len(c) / 10, OK) for c in completions]


def _fsdp_on_cpu(config_file: str) -> None:
    fsdp = yaml.safe_load(open(config_file))["fsdp_config"]
    os.environ["ACCELERATE_USE_FSDP"] = "true"
    for key, value in fsdp.items():
        os.environ[key.upper()] = str(value).lower() if isinstance(value, bool) else str(value)

    import accelerate.state as state
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    original = state.AcceleratorState.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables

    state.AcceleratorState.__init__ = init


def main() -> None:
    args = sys.argv[1:]
    if args[0] == "--fsdp":
        _fsdp_on_cpu(args[1])
        args = args[2:]
    from verifiers import registry

    sys.modules.setdefault("distributed_stage", sys.modules[__name__])
    registry._BUILTINS["length"] = "distributed_stage:LengthVerifier"
    module, *rest = args
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
