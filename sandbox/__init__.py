"""Docker sandbox for running model-written code (the code verifier builds on it).

    from sandbox import Job, SandboxPool
    with SandboxPool() as pool:
        result = pool.run(Job("tests", "def f(x):\n    return x + 1", tests="assert f(1) == 2"))

Layout: `config` (typed settings), `image` (builds the runner image, no registry), `container`
(one container and its job channel, orphan cleanup), `runner` (the warm pool), `harness` and
`driver` (the code that runs inside each container), `ensure-docker.sh` (daemon + image setup).
Names are imported on first use, so `import sandbox` loads neither the Docker SDK nor pydantic.
"""

import importlib
from typing import Any

__all__ = ["SandboxConfig", "JobLimits", "SandboxPool", "Job", "IOCase", "JobResult", "DockerUnavailableError"]

_WHERE = {
    "SandboxConfig": "sandbox.config",
    "JobLimits": "sandbox.config",
    "SandboxPool": "sandbox.runner",
    "Job": "sandbox.runner",
    "IOCase": "sandbox.runner",
    "JobResult": "sandbox.runner",
    "DockerUnavailableError": "sandbox.client",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
