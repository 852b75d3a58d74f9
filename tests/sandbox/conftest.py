"""Fixtures for the Docker sandbox tests: a daemon that must answer (a clear failure, never a
silent skip, when it does not: `make test` starts it first), and warm pools shared per module."""

import pytest

from sandbox.client import DockerUnavailableError, connect
from sandbox.config import JobLimits, SandboxConfig
from sandbox.runner import SandboxPool


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = connect()
    except DockerUnavailableError as e:
        pytest.fail(f"{e}\n(The docker tests need the daemon; `make test` runs `make docker-ready` first.)")
    return client


@pytest.fixture(scope="module")
def solo_pool(docker_client):
    """One warm container, so consecutive jobs land in the same container."""
    config = SandboxConfig(pool_size=1, jobs_per_container=10_000, limits=JobLimits(timeout_s=2.0))
    with SandboxPool(config, docker_client) as pool:
        yield pool
