"""The colocated vLLM engine runs inside the trainer's process, so its tests need vLLM importable
in the interpreter that runs them. On a CPU machine vLLM's CPU build pins another transformers
than the project, so it lives in its own virtualenv (`make vllm`): this test runs the colocated
engine's tests there (the contract, GRPO with the engine, the skipped-sync check), with this
checkout importable, and fails with their output if one fails or none ran."""

import importlib.util
import re
import subprocess

import pytest

from tests.conftest import REPO

FILES = ["tests/pipeline/rollout/test_contract.py", "tests/pipeline/trainers/test_rl_vllm.py"]
EXPECTED = 13  # the contract's 10 tests, GRPO's 2 and PPO's 1, for the `vllm` backend


@pytest.mark.vllm
@pytest.mark.slow
def test_the_colocated_engine_passes_its_tests_in_the_vllm_virtualenv(vllm_server_python, tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is importable here: the colocated engine's tests run in this session")
    cmd = [vllm_server_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}",
           "-m", "vllm", "-k", "vllm and not vllm_server", *FILES]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) == EXPECTED, output[-3000:]
