"""Builds the sandbox's runner image locally, with no registry: a Debian minbase root file system
with python3 (debootstrap), imported as an image (`docker import`).

The image holds only the OS and the interpreter. The sandbox's own code (the harness, the zygotes'
driver, the referee...) is passed to each container on its command line (sandbox/boot.py), so
changing it never needs a rebuild. Bump `IMAGE`'s tag when the
recipe below changes. Run `python -m sandbox.image` to build it when missing (sandbox/ensure-docker.sh
does, before the tests).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from sandbox.client import connect

__all__ = ["IMAGE", "image_exists", "ensure_image", "build_image"]

logger = logging.getLogger(__name__)

IMAGE = "rlvr-sandbox:bookworm-py3-1"
_SUITE = "bookworm"
_MIRROR = os.environ.get("RLVR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Removed from the root file system: nothing in the sandbox reads them, and they are most of its size.
_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")
_LOCK = Path(tempfile.gettempdir()) / "rlvr-sandbox-image.lock"


def image_exists(client: docker.DockerClient, tag: str = IMAGE) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_image(client: docker.DockerClient | None = None, tag: str = IMAGE, rebuild: bool = False) -> str:
    """Build `tag` unless it exists (or `rebuild`). One build at a time per machine (a file lock)."""
    client = client or connect()
    if not rebuild and image_exists(client, tag):
        return tag
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if rebuild or not image_exists(client, tag):
            build_image(client, tag)
    return tag


def build_image(client: docker.DockerClient, tag: str = IMAGE, mirror: str = _MIRROR, suite: str = _SUITE) -> None:
    """debootstrap a minbase system with python3 into a temporary directory and import it as `tag`."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed; run sandbox/ensure-docker.sh (it installs it from Debian)")
    if os.geteuid() != 0:
        raise RuntimeError("building the sandbox image runs debootstrap, which needs root")
    start = time.monotonic()
    # /var/tmp, not /tmp: the root file system is ~150 MB and /tmp may be a small tmpfs.
    with tempfile.TemporaryDirectory(prefix="rlvr-sandbox-image-", dir="/var/tmp") as work:
        root = Path(work) / "rootfs"
        logger.info("debootstrap %s (minbase + python3) from %s", suite, mirror)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root), mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for rel in _TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        tar = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar), "."], check=True)
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tar),
            repository=repository,
            tag=version or "latest",
            changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "LABEL rlvr.sandbox.image=1"],
        )
    logger.info("built %s in %.0f s", tag, time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=IMAGE, help="image name:tag to build")
    parser.add_argument("--rebuild", action="store_true", help="build even if the image exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="sandbox.image: %(message)s")
    client = connect()
    existed = not args.rebuild and image_exists(client, args.tag)
    ensure_image(client, args.tag, rebuild=args.rebuild)
    print(f"sandbox image {args.tag}: {'present' if existed else 'built'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
