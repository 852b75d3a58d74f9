"""prefect.yaml: every deployment names a flow that exists, with parameters its types accept, on
the pool `rlvr serve` creates, with a pull step that needs no git remote and inactive schedules."""

import importlib
from pathlib import Path

import yaml

from flows.serve import WORK_POOL

REPO = Path(__file__).resolve().parents[2]


def test_deployments_resolve_and_their_parameters_validate():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $RLVR_HOME }}"}}]
    flows = {}
    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        flows[flow.name] = flow
        assert deployment["work_pool"]["name"] == WORK_POOL
        assert deployment["schedules"] and not any(s["active"] for s in deployment["schedules"])
        # The parameters are checked the way a deployment run checks them: against the flow's types.
        flow.validate_parameters(deployment["parameters"])
    assert set(flows) == {"round", "campaign"}


def test_each_deployments_preset_and_overrides_make_a_valid_config():
    from flows.presets import resolve_config

    for deployment in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]:
        params = deployment["parameters"]
        cfg = resolve_config(params["preset"], params.get("overrides", []))
        assert cfg.output_dir.startswith("runs/")
