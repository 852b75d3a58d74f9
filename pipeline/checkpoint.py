"""Atomic checkpoints and resume.

A stage directory holds `ckpt-<step>/` directories (accelerate's full training state: model,
optimizer, scheduler, RNG; plus `trainer_state.json` with the step and the stage's own counters)
and, at the end, `final/` (a Hugging Face model directory that loads on its own). Every directory
is written under a temporary name and renamed into place, so a crash leaves either the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from errors import ConfigError

__all__ = ["atomic_directory", "Checkpointer", "export_model"]

STATE_FILE = "trainer_state.json"
_CKPT = re.compile(r"^ckpt-(\d+)$")


def atomic_directory(target: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` into a sibling temp directory, then rename it to `target` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


@contextmanager
def _quiet_tied_weights():
    """accelerate warns "Removed shared tensor {'lm_head.weight'}" at every save of a model with
    tied embeddings; that is expected (the tie is restored on load, which the resume tests check),
    so the warning is silenced for the save only."""
    log = logging.getLogger("accelerate.utils.other")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


class Checkpointer:
    """Saves and restores the training state of one stage through an `accelerate.Accelerator`."""

    def __init__(self, stage_dir: Path, accelerator, keep: int = 2, identity: str = "", strict: bool = True):
        self.stage_dir = Path(stage_dir)
        self.accelerator = accelerator
        self.keep = keep
        # False when checkpoints hold only part of a model's tensors (a LoRA policy's adapters).
        self.strict = strict
        # What the training state depends on (model, task, starting point): written into every
        # checkpoint, and a checkpoint with another identity is refused rather than resumed.
        self.identity = identity

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first (a directory without its state file is ignored)."""
        found = []
        if self.stage_dir.is_dir():
            for path in self.stage_dir.iterdir():
                match = _CKPT.match(path.name)
                if match and (path / STATE_FILE).is_file():
                    found.append((int(match.group(1)), path))
        return sorted(found)

    def save(self, step: int, state: dict[str, Any]) -> Path:
        target = self.stage_dir / f"ckpt-{step:07d}"
        accelerator = self.accelerator

        def write(tmp: Path) -> None:
            with _quiet_tied_weights():
                accelerator.save_state(str(tmp))
            if accelerator.is_main_process:
                record = {"step": step, "identity": self.identity, **state}
                (tmp / STATE_FILE).write_text(json.dumps(record, indent=1))

        # Every process writes its shards into the temp directory; only the main one renames.
        if accelerator.num_processes == 1:
            atomic_directory(target, write)
        else:
            tmp = self.stage_dir / f".{target.name}.tmp-shared"
            write(tmp)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
            accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for _, old in self.checkpoints()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def restore_latest(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into the prepared objects; returns its state, or None."""
        found = self.checkpoints()
        if not found:
            return None
        _, path = found[-1]
        state = json.loads((path / STATE_FILE).read_text())
        if state.get("identity", "") != self.identity:
            raise ConfigError(
                f"{path}: this checkpoint was trained with another model, task or starting model; "
                f"use a new output_dir, or delete {self.stage_dir} to start this stage over"
            )
        self.accelerator.load_state(str(path), strict=self.strict)
        return state


def export_model(accelerator, model, tokenizer, target: Path) -> Path:
    """Write a standalone Hugging Face directory (config, safetensors, tokenizer) atomically. A LoRA
    policy is written merged, with its adapters alone in `adapter/` beside it."""
    from pipeline.lora import is_lora, merged_model

    unwrapped = accelerator.unwrap_model(model)
    adapters = is_lora(unwrapped)
    state_dict = None if adapters else accelerator.get_state_dict(model)
    if accelerator.is_main_process:

        def write(tmp: Path) -> None:
            if adapters:
                merged_model(unwrapped).save_pretrained(tmp)
                unwrapped.save_pretrained(tmp / "adapter")
            else:
                unwrapped.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)

        atomic_directory(Path(target), write)
    accelerator.wait_for_everyone()
    return Path(target)
