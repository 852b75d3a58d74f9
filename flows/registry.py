"""The model registry of a campaign: which checkpoints were promoted, which rejected and why, and
`promoted/`, which always holds the last good model.

    <output_dir>/registry/history.json     every decision, in order (promoted, rejected, rolled back)
    <output_dir>/registry/models/v<k>-round-<r>/   a copy of each promoted checkpoint
    <output_dir>/registry/promoted  ->  models/v<k>-round-<r>   (a link swapped atomically)

A campaign that is re-run (a retried flow) finds its decided rounds in the history and does not
decide them again. `rollback()` points `promoted` back at the promotion before the current one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from errors import UserError

__all__ = ["ModelRegistry"]


class ModelRegistry:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.history_file = self.root / "history.json"
        self.promoted = self.root / "promoted"

    # --- reading ---------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        if not self.history_file.is_file():
            return []
        return json.loads(self.history_file.read_text())

    def decision(self, round_index: int) -> dict[str, Any] | None:
        """This round's promotion or rejection, if the campaign already made it."""
        for entry in self.history():
            if entry.get("round") == round_index and entry["event"] in ("promoted", "rejected"):
                return entry
        return None

    def current(self) -> dict[str, Any] | None:
        """The entry `promoted/` points at (the start entry before any promotion), or None."""
        target = os.readlink(self.promoted) if self.promoted.is_symlink() else None
        entries = [e for e in self.history() if e["event"] in ("start", "promoted")]
        for entry in reversed(entries):
            if target is not None and entry.get("version") == Path(target).name:
                return entry
        starts = [e for e in entries if e["event"] == "start"]
        return starts[-1] if target is None and starts else None

    def current_checkpoint(self) -> str | None:
        entry = self.current()
        if entry is None:
            return None
        return str(self.promoted.resolve()) if entry["event"] == "promoted" else entry["checkpoint"]

    # --- writing ---------------------------------------------------------------------------
    def start(self, checkpoint: str, metrics: dict[str, float]) -> dict[str, Any]:
        """Record the model the campaign starts from, as the first thing a round must beat."""
        return self._append({"event": "start", "checkpoint": checkpoint, "metrics": metrics})

    def promote(self, round_index: int, checkpoint: str, metrics: dict[str, float], init: str | None = None) -> dict[str, Any]:
        """Copy `checkpoint` into the registry and point `promoted/` at the copy, atomically."""
        version = f"v{1 + sum(e['event'] == 'promoted' for e in self.history())}-round-{round_index}"
        models = self.root / "models"
        models.mkdir(parents=True, exist_ok=True)
        tmp = models / f".{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(checkpoint, tmp)
        os.replace(tmp, models / version)
        self._point_at(version)
        return self._append({"event": "promoted", "round": round_index, "checkpoint": checkpoint,
                             "version": version, "metrics": metrics, "init": init})

    def reject(self, round_index: int, checkpoint: str | None, metrics: dict[str, float], reasons: list[str],
               init: str | None = None) -> dict[str, Any]:
        """Record a rejected round (`checkpoint` None: the round stopped before it had one)."""
        return self._append({"event": "rejected", "round": round_index, "checkpoint": checkpoint, "metrics": metrics,
                             "reasons": reasons, "init": init})

    def rollback(self) -> dict[str, Any]:
        """Point `promoted/` back at the promotion before the current one."""
        current = self.current()
        promotions = [e for e in self.history() if e["event"] == "promoted"]
        if current is None or current["event"] != "promoted":
            raise UserError(f"{self.root}: nothing is promoted, so there is nothing to roll back")
        earlier = [e for e in promotions if int(e["version"][1:].split("-")[0]) < int(current["version"][1:].split("-")[0])]
        if not earlier:
            raise UserError(f"{self.root}: {current['version']} is the first promotion; there is none before it to "
                            "restore")
        previous = earlier[-1]
        self._point_at(previous["version"])
        return self._append({"event": "rolled_back", "from": current["version"], "to": previous["version"],
                             "round": previous["round"], "metrics": previous["metrics"],
                             "checkpoint": previous["checkpoint"]})

    def _point_at(self, version: str) -> None:
        link = self.root / ".promoted.tmp"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("models") / version)
        os.replace(link, self.promoted)  # atomic: a reader sees the old model or the new, never none

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.root.mkdir(parents=True, exist_ok=True)
        history = self.history() + [entry]
        tmp = self.history_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(history, indent=1))
        os.replace(tmp, self.history_file)
        return entry
