"""Presets: the shipped configs (configs/*.yaml) by name, and how a flow's parameters become a
run config.

A deployment's form offers `preset` as a choice of the shipped configs (read from configs/ when
the flow module is imported, so at deploy time) plus `overrides` in the `key.sub=value` form of
the command line; `config`, the full typed config, replaces the preset when it is given. The
Prefect server refuses an override that is not of that form (field `overrides.<i>`); the flow
refuses an unknown key or a bad value before any stage starts, with the field path
(`field grpo.clip_low: ...`), and a refusal is never retried.

(No `from __future__ import annotations`: Prefect reads these types at runtime.)
"""

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field

from errors import ConfigError
from pipeline.config import RunConfig, apply_overrides, config_from_dict

__all__ = ["CONFIGS", "PRESETS", "Preset", "Override", "resolve_config"]

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
Preset = Literal[PRESETS]  # type: ignore[valid-type]

# key.sub=value, checked by the server's schema; the key and the value are checked by the flow.
Override = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=.*$", max_length=2000)]


def resolve_config(preset: str | None, overrides: list[str], config: RunConfig | None = None) -> RunConfig:
    """The run config of a flow run: `config` (or the preset's file) with the overrides on top.
    A bad preset, key or value raises ConfigError naming it."""
    if config is not None:
        return config_from_dict(apply_overrides(config.model_dump(mode="json"), list(overrides)), "config")
    if preset is None:
        raise ConfigError("field preset: give a preset (a shipped config) or a config")
    if preset not in PRESETS:
        raise ConfigError(f"field preset: unknown preset {preset!r} (shipped: {', '.join(PRESETS)})")
    data = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text()) or {}
    return config_from_dict(apply_overrides(data, list(overrides)), f"preset {preset!r}")
