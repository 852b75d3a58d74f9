"""`rlvr serve`: everything the Prefect UI needs to run rounds and campaigns, in one command.

Starts a local Prefect server (unless PREFECT_API_URL names one), creates the `rlvr` process work
pool and the `gpu` global concurrency limit, deploys `prefect.yaml`, and runs a worker in the
foreground, printing the UI address. Ctrl-C stops the worker and the server it started.

Against a remote server: `PREFECT_API_URL=http://host:4200/api rlvr serve` deploys and starts a
worker on this machine; on every further GPU node, `rlvr serve --worker-only`.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["main", "REPO", "WORK_POOL", "ensure_pool_and_limit"]

REPO = Path(__file__).resolve().parents[1]
WORK_POOL = "rlvr"  # the pool prefect.yaml deploys to


def _prefect(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def _wait_healthy(api_url: str, server: subprocess.Popen | None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {server.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {api_url}/health after {timeout_s:.0f} s")


def ensure_pool_and_limit(api_url: str, pool: str, limit_name: str, slots: int) -> None:
    """Create the process work pool and the accelerator's concurrency limit (or set its slots)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            pass
        try:
            client.read_global_concurrency_limit_by_name(limit_name)
            client.update_global_concurrency_limit(limit_name, GlobalConcurrencyLimitUpdate(limit=slots, active=True))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit_name, limit=slots))


def _stop(proc: subprocess.Popen | None, grace_s: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1" if host == "0.0.0.0" else host, port)) == 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address of the local server (0.0.0.0 for other machines)")
    parser.add_argument("--port", type=int, default=4200, help="port of the local server")
    parser.add_argument("--gpu-slots", type=int, default=1, help="stages that may run at once on this machine's accelerators")
    parser.add_argument("--results-dir", default=None,
                        help="result storage shared by every worker (default: <checkout>/runs/prefect-results)")
    parser.add_argument("--worker-only", action="store_true", help="only start a worker (the server and deployments exist)")
    parser.add_argument("--no-worker", action="store_true", help="set up and deploy, start no worker")
    args = parser.parse_args(argv)

    results = Path(args.results_dir or REPO / "runs" / "prefect-results").resolve()
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RLVR_HOME": str(REPO), "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    server = worker = None
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends the children too
    try:
        api_url = os.environ.get("PREFECT_API_URL")
        if not api_url and not args.worker_only:
            if _port_in_use(args.host, args.port):
                print(f"error: port {args.port} is in use (another Prefect server?); pass --port, or set "
                      f"PREFECT_API_URL=http://{args.host}:{args.port}/api to use that server", file=sys.stderr)
                return 2
            api_url = f"http://{args.host}:{args.port}/api"
            home = Path(env.setdefault("PREFECT_HOME", str(Path.home() / ".prefect")))
            home.mkdir(parents=True, exist_ok=True)
            print(f"starting the Prefect server at {api_url} (PREFECT_HOME={home})", flush=True)
            # The UI reads its API address from the server's settings, not from --port.
            ui_api = os.environ.get("PREFECT_UI_API_URL", api_url.replace("0.0.0.0", "127.0.0.1"))
            server = subprocess.Popen(_prefect("server", "start", "--host", args.host, "--port", str(args.port)),
                                      env={**env, "PREFECT_API_URL": "", "PREFECT_UI_API_URL": ui_api,
                                           "PREFECT_SERVER_API_HOST": args.host, "PREFECT_SERVER_API_PORT": str(args.port)})
        if not api_url:
            print("error: --worker-only needs PREFECT_API_URL (the server's address, e.g. http://host:4200/api)",
                  file=sys.stderr)
            return 2
        env["PREFECT_API_URL"] = api_url
        _wait_healthy(api_url, server)
        if not args.worker_only:
            ensure_pool_and_limit(api_url, WORK_POOL, "gpu", args.gpu_slots)
            subprocess.run(_prefect("--no-prompt", "deploy", "--all"), cwd=REPO, env=env, check=True)
            print("deployed: round/default, campaign/default (schedules inactive)", flush=True)
        ui = api_url.removesuffix("/api")
        print(f"Prefect UI: {ui}  (deployments: {ui}/deployments)", flush=True)
        if args.no_worker:
            if server is not None:
                print("the server keeps running; Ctrl-C stops it", flush=True)
                server.wait()
            return 0
        worker = subprocess.Popen(_prefect("worker", "start", "--pool", WORK_POOL, "--type", "process"),
                                  cwd=REPO, env=env)
        print(f"worker started on pool {WORK_POOL!r}; Ctrl-C stops it"
              + (" and the server" if server is not None else ""), flush=True)
        while worker.poll() is None and (server is None or server.poll() is None):
            time.sleep(1)
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        _stop(worker)
        _stop(server)


if __name__ == "__main__":
    sys.exit(main())
