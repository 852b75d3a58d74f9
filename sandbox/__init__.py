"""Docker sandbox for running model-written code (the code verifier builds on it).

    from sandbox import Job, SandboxPool
    with SandboxPool() as pool:
        result = pool.run(Job("tests", "def f(x):\n    return x + 1", tests="assert f(1) == 2"))

Layout: `config` (typed settings), `image` (builds the runner image, no registry), `container`
(one container and its job channel, orphan cleanup), `runner` (the warm pool), `ensure-docker.sh`
(daemon + image setup). Inside each container (standard library only, passed on its command line
through `boot`): `harness` (PID 1: jobs in, verdicts out) and `runs` (its processes and resets),
`driver` (the zygotes that fork every run), `server` (the program's side), `referee`, `remote` and
`proxies` (the trusted process that runs the tests), and `wire` (the plain data that crosses).
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
