"""The Docker connection, with an error that says what to do when there is no daemon."""

from __future__ import annotations

import docker

from errors import UserError

__all__ = ["DockerUnavailableError", "connect"]


class DockerUnavailableError(UserError):
    """No Docker daemon answers, so the code sandbox cannot run."""


def connect(timeout_s: float = 60.0) -> docker.DockerClient:
    """A client for the daemon named by DOCKER_HOST (default: the local socket), checked with a ping."""
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except Exception as e:  # the SDK raises DockerException, requests' ConnectionError, FileNotFoundError
        raise DockerUnavailableError(
            f"Cannot reach the Docker daemon ({type(e).__name__}: {e}). The code sandbox needs one: run "
            "`make docker-ready` (sandbox/ensure-docker.sh installs docker.io, starts dockerd and builds "
            "the sandbox image), or point DOCKER_HOST at a running daemon."
        ) from e
    return client
