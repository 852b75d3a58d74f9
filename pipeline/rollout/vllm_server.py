"""Rollouts from a vLLM OpenAI-compatible server, over HTTP: the engine for GPU nodes where vLLM
runs in processes (and a virtualenv) of its own.

    python -m pipeline.rollout.vllm_server --config run.yaml [--init DIR] [key=value ...]

starts the server a run config describes and prints `{"url": ...}` when it answers (for a flow or
a person who keeps one server across stages: give its address as `rollout.url`). Without
`rollout.url` a stage starts its own server and stops it when it ends.

- **Generation**: one `/v1/completions` request per prompt, sent concurrently (each with its own
  seed, so prompts do not share random draws), token ids in and out (`return_token_ids`), `n`
  completions, the sampled token's log-prob (`logprobs=0`, `processed_logprobs`).
- **Weights**: the policy's tensors are written atomically as safetensors into `sync_dir`, then,
  between `/pause` and `/resume`, `POST /collective_rpc` calls the worker extension's
  `rlvr_load_weights(path=...)` (`vllm_worker.py`: vLLM's `reload_weights`, a tied LM head
  re-packed) and the prefix cache is reset. On GPUs `transfer: nccl` broadcasts the tensors
  instead, through vLLM's weight-transfer engine (the trainer then needs vLLM installed).
- The server needs `VLLM_SERVER_DEV_MODE=1` (for `/collective_rpc`), the worker extension
  (`--worker-extension-cls pipeline.rollout.vllm_worker.WeightSyncExtension`, this checkout on its
  `PYTHONPATH`) and `--skip-tokenizer-init`; a started server gets all three.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

from pipeline.rollout.base import Rollouts, SamplingParams
from pipeline.rollout.vllm import assemble_rollouts, engine_options, prompt_seeds, sampling_options

__all__ = ["VLLMServer", "VLLMServerRolloutEngine", "server_command", "default_python"]

REPO = Path(__file__).resolve().parents[2]
_MAX_CONCURRENT = 64


def default_python(cfg) -> str:
    """The interpreter that starts a server: `rollout.python`, $RLVR_VLLM_PYTHON, or the
    checkout's `.venv-vllm` (`make vllm`)."""
    python = cfg.python or os.environ.get("RLVR_VLLM_PYTHON") or str(REPO / ".venv-vllm" / "bin" / "python")
    if not Path(python).exists():
        from errors import ConfigError

        raise ConfigError(f"rollout.python: {python} not found; build the vLLM virtualenv with `make vllm`, or set "
                          "rollout.python (or $RLVR_VLLM_PYTHON) to a Python that has vLLM, or rollout.url to a server")
    return python


def server_command(cfg, python: str, model_dir: str, dtype: str, seed: int, port: int, on_cpu: bool) -> list[str]:
    """The command line of a vLLM server for a rollout config."""
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port)]
    for key, value in engine_options(cfg, model_dir, dtype, seed, on_cpu).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is False:
            cmd.append("--no-" + key.replace("_", "-"))
        else:
            cmd += [flag, str(value)]
    if cfg.tensor_parallel_size > 1:
        cmd += ["--tensor-parallel-size", str(cfg.tensor_parallel_size)]
    if cfg.transfer == "nccl":
        cmd += ["--weight-transfer-config", json.dumps({"backend": "nccl"})]
    return cmd + list(cfg.server_args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # The server gets SIGKILL when the process that started it dies, even by SIGKILL.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class VLLMServer:
    """A server process this run started, in a process group of its own. It is stopped by `stop`,
    or when it is garbage-collected or the interpreter exits (a stage that raised): vLLM's
    engine-core process would otherwise outlive the API server. (A trainer killed by SIGKILL takes
    the API server with it, PR_SET_PDEATHSIG, but not the engine core.)"""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path, cleanup: list[str]):
        self.process, self.url, self.log_path = process, url, log_path
        self._stop = weakref.finalize(self, _stop_server, process, cleanup)

    @classmethod
    def start(cls, cfg, model_dir: str, dtype: str, seed: int = 0, cleanup: str | None = None) -> "VLLMServer":
        """Start a server on `model_dir` and wait until it answers (`cfg.startup_timeout_s`)."""
        import torch

        port = cfg.port or _free_port()
        on_cpu = not torch.cuda.is_available()
        cmd = server_command(cfg, default_python(cfg), model_dir, dtype, seed, port, on_cpu)
        log_dir = tempfile.mkdtemp(prefix="rlvr-vllm-server-")
        log_path = Path(log_dir) / "server.log"
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        if on_cpu:
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # a shared machine: do not pin cores
        with open(log_path, "wb") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                       start_new_session=True, preexec_fn=_die_with_parent)
        server = cls(process, f"http://127.0.0.1:{port}", log_path, [log_dir, *filter(None, [cleanup])])
        try:
            server.wait_ready(cfg.startup_timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with code {self.process.returncode} while starting:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the vLLM server did not answer within {timeout_s:g} s:\n" + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        self._stop()  # once; later calls do nothing


def _stop_server(process: subprocess.Popen, cleanup: list[str], grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever of the group is left: vLLM's
    engine-core process (same group) can outlive an API server that exited on SIGTERM."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5 if sig == signal.SIGTERM else 0)  # the engine core's own shutdown
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)


class VLLMServerRolloutEngine:
    """A client of a vLLM server (given by `url`, or `server`, one this run started).

    `pushes_weights` False: another process of the run (the main one) pushes the weights to the
    same server; this one still iterates them (under FSDP the gather is a collective)."""

    shares_weights = False

    def __init__(self, cfg, tokenizer, eos_ids: Sequence[int], url: str | None = None,
                 server: VLLMServer | None = None, pushes_weights: bool = True):
        if (url is None) == (server is None):
            raise ValueError("give either the url of a server or a started server")
        self.cfg = cfg
        self.url = (url or server.url).rstrip("/")
        self.server = server
        self.tokenizer = tokenizer
        self.eos_ids = list(eos_ids)
        self.pushes_weights = pushes_weights
        self._pool = ThreadPoolExecutor(max_workers=_MAX_CONCURRENT, thread_name_prefix="vllm-client")
        self._own_sync_dir = None
        self._nccl = None

    # --- HTTP ---------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.request_timeout_s) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            raise RuntimeError(f"vLLM server {self.url}{path}: HTTP {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            tail = f"\n{self.server.log_tail()}" if self.server else ""
            raise RuntimeError(f"vLLM server {self.url}{path} unreachable: {e.reason}{tail}") from None
        return json.loads(raw) if raw.strip() else None

    # --- the engine protocol ------------------------------------------------------------------
    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingParams) -> Rollouts:
        common = sampling_options(sampling, n, self.eos_ids)
        common.update(return_token_ids=True, return_tokens_as_token_ids=True)

        def one(prompt_and_seed):
            prompt, seed = prompt_and_seed
            body = {**common, "prompt": list(prompt), **({"seed": seed} if seed is not None else {})}
            choices = sorted(self._post("/v1/completions", body)["choices"], key=lambda c: c["index"])
            return [(list(c["token_ids"]), list(c["logprobs"]["token_logprobs"])) for c in choices]

        samples = list(self._pool.map(one, zip(prompts, prompt_seeds(sampling, len(prompts)))))
        return assemble_rollouts(prompts, n, samples, self.eos_ids, self.tokenizer)

    def update_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        if not self.pushes_weights:
            for _ in weights:  # stay in step with the collective gathers of the pushing process
                pass
            return
        if self.cfg.transfer == "nccl":
            self._send_nccl(weights)
            return
        directory = self._sync_root() / "weights"  # replaced whole: the server reads it before the next sync
        _write_safetensors(directory, weights)
        self._post("/pause?mode=wait")
        try:
            self._post("/collective_rpc", {"method": "rlvr_load_weights", "kwargs": {"path": str(directory)}})
            self._post("/reset_prefix_cache")
        finally:
            self._post("/resume")

    def close(self) -> None:
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_sync_dir:
            shutil.rmtree(self._own_sync_dir, ignore_errors=True)
            self._own_sync_dir = None

    # --- weight transfer ----------------------------------------------------------------------
    def _sync_root(self) -> Path:
        if self.cfg.sync_dir:
            root = Path(self.cfg.sync_dir).expanduser()
            root.mkdir(parents=True, exist_ok=True)
            return root
        if self._own_sync_dir is None:
            base = "/dev/shm" if Path("/dev/shm").is_dir() else None
            self._own_sync_dir = tempfile.mkdtemp(prefix="rlvr-weights-", dir=base)
            weakref.finalize(self, shutil.rmtree, self._own_sync_dir, True)  # also when a stage raised
        return Path(self._own_sync_dir)

    def _send_nccl(self, weights: Iterable[tuple[str, Any]]) -> None:
        """GPU only: broadcast the tensors from this process (NCCL rank 0) to the server's workers,
        through vLLM's trainer-side weight-transfer engine (vLLM >= 0.32 in this virtualenv)."""
        from vllm.distributed.weight_transfer.clients import HTTPVLLMWeightSyncClient
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo, NCCLTrainerWeightTransferEngine

        source = _TensorListSource(list(weights))
        if self._nccl is None:
            info = NCCLTrainerInitInfo(master_address="127.0.0.1", master_port=_free_port(),
                                       world_size=1 + self.cfg.tensor_parallel_size, rank=0)
            self._nccl = NCCLTrainerWeightTransferEngine.trainer_init(
                info, client=HTTPVLLMWeightSyncClient(self.url, timeout=self.cfg.request_timeout_s), source=source)
        self._nccl.source = source
        self._post("/pause?mode=wait")
        try:
            self._nccl.send_weights()
            self._post("/reset_prefix_cache")
        finally:
            self._post("/resume")


def _write_safetensors(directory: Path, weights: Iterable[tuple[str, Any]]) -> None:
    """The tensors as one safetensors file in `directory`, written atomically (a reader never sees
    half a file)."""
    from safetensors.torch import save_file

    from pipeline.checkpoint import atomic_directory

    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in weights}  # clone: tied tensors
    atomic_directory(directory, lambda tmp: (tmp.mkdir(parents=True, exist_ok=True),
                                             save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})))


class _TensorListSource:
    """A vLLM `WeightSource` over a list of full tensors (names as the Hugging Face checkpoint has them)."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        self.pairs = pairs

    def metadata(self):
        from vllm.distributed.weight_transfer.base import ParamMeta

        return [ParamMeta(name, t.dtype, tuple(t.shape)) for name, t in self.pairs]

    def __iter__(self):
        return iter(self.pairs)

    def held_names(self):
        return None

    def groups(self):
        from vllm.distributed.weight_transfer.base import layerwise_groups

        return layerwise_groups([name for name, _ in self.pairs])

    def iter_groups(self):
        tensors = dict(self.pairs)
        for names in self.groups():
            yield names, [tensors[n] for n in names]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start the server of a run config, print its URL as JSON, and keep it until interrupted."""
    import argparse

    from errors import ConfigError, PipelineError

    parser = argparse.ArgumentParser(prog="python -m pipeline.rollout.vllm_server",
                                     description="Start the vLLM server a run config describes (rollout.backend: vllm_server).")
    parser.add_argument("--config", help="run config (YAML)")
    parser.add_argument("--init", help="model directory to serve; default: model.name of the config")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    try:
        from pipeline.config import load_config
        from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
        from pipeline.rollout.vllm import engine_dtype, engine_model_dir

        cfg = load_config(args.config, args.overrides, check_stages=False)
        if cfg.rollout.backend != "vllm_server":
            raise ConfigError(f"rollout.backend is {cfg.rollout.backend!r}; this command serves 'vllm_server'")
        source = resolve_model(args.init or cfg.model.name, cfg.model)
        tokenizer = load_tokenizer(source)
        model = None if source.kind == "local" else load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed)
        directory, snapshot = engine_model_dir(source.path, model, tokenizer)
        server = VLLMServer.start(cfg.rollout, directory, engine_dtype(cfg.rollout, model) if model else cfg.model.dtype,
                                  cfg.seed, cleanup=snapshot)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps({"url": server.url, "pid": server.process.pid, "log": str(server.log_path)}), flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
