"""The flows as a user of the Prefect UI meets them, for real: `rlvr serve` starts a server,
creates the pool and the `gpu` limit, deploys prefect.yaml and starts a worker; the `campaign`
deployment is triggered through the API with the tiny config (2 rounds); the worker's flow
process is SIGKILLed in the middle of round 2's GRPO stage, the run is retried, and it completes
without redoing finished work. Then the UI is loaded in headless Chromium.

One module-scoped fixture does the (slow) run once; the tests check its parts.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _processes() -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.append((int(entry.name), ppid, cmd))
    return out


class Api:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=30)

    def send(self, method: str, path: str, **kwargs) -> httpx.Response:
        # Prefect's server (SQLite) can stall past the 30 s timeout while a campaign writes; a read, a
        # filter or a forced state change is safe to send again (the callers' deadlines still bound it).
        for _ in range(2):
            try:
                return self.http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                pass
        return self.http.request(method, path, **kwargs)

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.send("POST", path, json=body)

    def flow_run(self, run_id: str) -> dict:
        return self.send("GET", f"/flow_runs/{run_id}").raise_for_status().json()

    def subflows(self, parent_id: str) -> list[dict]:
        tasks = self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [parent_id]}}}).json()
        ids = [t["id"] for t in tasks]
        return self.post("/flow_runs/filter", {"flow_runs": {"parent_task_run_id": {"any_": ids}}}).json() if ids else []

    def task_runs(self, flow_run_id: str) -> list[dict]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}}).json()

    def artifacts(self, flow_run_id: str) -> list[dict]:
        return self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}).json()

    def logs(self, flow_run_id: str) -> list[str]:
        messages: list[str] = []
        while True:
            page = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200,
                                              "offset": len(messages), "sort": "TIMESTAMP_ASC"}).json()
            messages += [r["message"] for r in page]
            if len(page) < 200:
                return messages


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`rlvr serve` on a free port with a private PREFECT_HOME; torn down with its process group."""
    root = tmp_path_factory.mktemp("serve")
    (root / "home").mkdir()
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(root / "home"), "OMP_WAIT_POLICY": "PASSIVE"}
    for name in ("PREFECT_API_URL", "PREFECT_UI_API_URL"):
        env.pop(name, None)
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port", str(port),
                             "--results-dir", str(root / "results")],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: "worker started" in (root / "serve.log").read_text() or proc.poll() is not None, 180,
              "rlvr serve to deploy and start a worker")
        assert proc.poll() is None, (root / "serve.log").read_text()[-3000:]
        yield {"api": Api(f"http://127.0.0.1:{port}/api"), "ui": f"http://127.0.0.1:{port}", "root": root,
               "log": root / "serve.log"}
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def _tiny_config(out: Path) -> dict:
    # After 6 SFT steps the model answers nothing right, so GRPO has no signal to learn from: the
    # run-health guard would rightly stop it. This run only has to last, so that guard is off.
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        f"output_dir={out}", "task.sft_size=128", "task.eval_size=16", "sft.steps=6", "sft.batch_size=32",
        "sft.checkpoint_every=3", "grpo.steps=300", "grpo.prompts_per_step=8", "grpo.checkpoint_every=10",
        "grpo.eval_every=0", "rollout.batch_size=64", "guards.no_signal_share=null", "campaign.rounds=2",
    ])
    return cfg.model_dump(mode="json")


@pytest.fixture(scope="module")
def campaign(served):
    """Trigger the campaign deployment (2 rounds); SIGKILL its flow process during round 2's GRPO
    stage once it has a checkpoint; retry the run as the UI's Retry button does; wait for it."""
    api, out = served["api"], served["root"] / "campaign"
    deployment = api.send("GET", "/deployments/name/campaign/default").raise_for_status().json()
    run = api.post(f"/deployments/{deployment['id']}/create_flow_run", {
        "parameters": {"config": _tiny_config(out), "overrides": [],
                       "execution": {"retries": 0, "stage_timeout_s": 900}},
    }).raise_for_status().json()

    grpo2 = out / "round-2" / "grpo"
    _wait(lambda: any(grpo2.glob("ckpt-*")), 420, "a checkpoint of round 2's GRPO stage")
    sft2_weights = out / "round-2" / "sft" / "final" / "model.safetensors"
    before = {"round-1": (out / "round-1" / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns,
              "round-2-sft": sft2_weights.stat().st_mtime_ns}
    trainer = [(pid, ppid) for pid, ppid, cmd in _processes() if "pipeline.trainers.grpo" in cmd and str(grpo2.parent) in cmd]
    assert len(trainer) == 1, trainer
    trainer_pid, flow_pid = trainer[0]
    os.kill(flow_pid, signal.SIGKILL)
    killed_at_step = max(int(p.name.split("-")[1]) for p in grpo2.glob("ckpt-*"))
    # The trainer dies with its flow process (no orphan keeps writing the directory).
    _wait(lambda: not Path(f"/proc/{trainer_pid}").exists() or "Z" in Path(f"/proc/{trainer_pid}/stat").read_text().split()[2],
          30, "the orphaned GRPO trainer to die")
    crashed = _wait(lambda: (r := api.flow_run(run["id"]))["state"]["type"] == "CRASHED" and r, 120,
                    "the worker to mark the killed run crashed")

    def retry() -> None:  # what the UI's Retry button sends
        answer = api.post(f"/flow_runs/{run['id']}/set_state", {
            "state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True}).raise_for_status().json()
        assert answer["status"] == "ACCEPT", answer

    def restarted() -> dict | None:
        # The run's executor and then the worker each report the crash, a few seconds apart; a
        # retry that the second report overwrote is sent again, as a user would click again.
        r = api.flow_run(run["id"])
        if r["state"]["type"] == "CRASHED":
            retry()
            return None
        return r if r["run_count"] > crashed["run_count"] else None

    _wait(restarted, 180, "the retried run to start", interval=3)
    final = _wait(lambda: (r := api.flow_run(run["id"]))["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") and r,
                  600, "the retried campaign to finish", interval=2)
    return {"run": final, "crashed": crashed, "out": out, "before": before, "killed_at_step": killed_at_step,
            **served}


def test_campaign_completes_with_round_subflows_artifacts_and_checkpoint(campaign):
    api, run, out = campaign["api"], campaign["run"], campaign["out"]
    assert run["state"]["type"] == "COMPLETED", (run["state"], campaign["log"].read_text()[-4000:])
    rounds = {r["name"]: r for r in api.subflows(run["id"])}
    assert {"round-1", "round-2"} <= set(rounds), sorted(rounds)
    assert rounds["round-1"]["state"]["type"] == "COMPLETED"

    summary = json.loads((out / "campaign.json").read_text())
    assert [(r["round"], r["event"] in ("promoted", "rejected")) for r in summary["rounds"]] == [(1, True), (2, True)]
    assert summary["rounds"][1]["checkpoint"].startswith(str(out / "round-2"))
    assert (Path(summary["promoted"]["checkpoint"]) / "model.safetensors").is_file()

    table = [a for a in api.artifacts(run["id"]) if a["type"] == "table" and (a["key"] or "").startswith("campaign-")]
    assert len(table) == 1 and [row["round"] for row in json.loads(table[0]["data"])] == [None, 1, 2]
    for name in ("round-1", "round-2"):
        artifacts = api.artifacts(rounds[name]["id"])
        markdown = [a["data"] for a in artifacts if a["type"] == "markdown"]
        tables = [a["description"] for a in artifacts if a["type"] == "table"]
        assert any("data:image/png;base64," in m and m.startswith("# grpo") and "## Verifiers" in m for m in markdown), name
        assert any(d.startswith("grpo: metrics per step") for d in tables), tables
        assert any(d.startswith("evaluate:") for d in tables), tables

    def round_events() -> list[dict]:  # the server persists events in batches, a few seconds behind
        events = api.post("/events/filter", {"filter": {"event": {"name": ["rlvr.round.completed"]}}}).json()["events"]
        return [e["payload"] for e in events] if len(events) >= 2 else []

    payloads = _wait(round_events, 60, "both rounds' rlvr.round.completed events", interval=2)
    assert sorted(p["output_dir"] for p in payloads) == [str(out / "round-1"), str(out / "round-2")]
    assert all(p["value"] is not None and Path(p["checkpoint"]).is_dir() for p in payloads)

    def model_events() -> list[dict]:  # one decision per round: promoted or rejected
        names = ["rlvr.model.promoted", "rlvr.model.rejected"]
        events = api.post("/events/filter", {"filter": {"event": {"name": names}}}).json()["events"]
        return events if len(events) >= 2 else []

    decisions = _wait(model_events, 60, "a promoted or rejected event per round", interval=2)
    history = json.loads((out / "registry" / "history.json").read_text())
    assert sorted((e["event"], e["payload"]["round"]) for e in decisions) == sorted(
        (f"rlvr.model.{h['event']}", h["round"]) for h in history if h["event"] in ("promoted", "rejected"))


def test_killed_round_resumes_without_redoing_finished_work(campaign):
    api, run, out, before = campaign["api"], campaign["run"], campaign["out"], campaign["before"]
    assert campaign["crashed"]["state"]["type"] == "CRASHED"
    assert run["run_count"] >= 2 and run["state"]["type"] == "COMPLETED"
    # Round 1 ran once: one subflow run, its three stages once each, its checkpoints untouched,
    # and the registry decided it once (the retry kept the decision).
    round1 = [r for r in api.subflows(run["id"]) if r["name"] == "round-1"]
    assert len(round1) == 1
    assert sorted(t["name"] for t in api.task_runs(round1[0]["id"])) == ["evaluate", "grpo", "sft"]
    assert (out / "round-1" / "grpo" / "final" / "model.safetensors").stat().st_mtime_ns == before["round-1"]
    history = json.loads((out / "registry" / "history.json").read_text())
    assert [e.get("round") for e in history if e["event"] in ("promoted", "rejected")] == [1, 2]
    # Round 2's finished SFT stage came from the cache; its weights were not rewritten.
    round2 = [r for r in api.subflows(run["id"]) if r["name"] == "round-2"]
    sft_states = [t["state"]["name"] for r in round2 for t in api.task_runs(r["id"]) if t["name"] == "sft"]
    assert "Cached" in sft_states, sft_states
    assert (out / "round-2" / "sft" / "final" / "model.safetensors").stat().st_mtime_ns == before["round-2-sft"]
    # GRPO resumed at its last checkpoint, and its metrics hold every step exactly once.
    logs = [m for r in round2 for m in api.logs(r["id"])]
    resumed = [m for m in logs if "grpo: resumed from step" in m]
    assert resumed, logs[-20:]
    assert int(resumed[-1].rsplit(" ", 1)[1]) >= campaign["killed_at_step"] > 0
    rows = [json.loads(line) for line in (out / "round-2" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward_mean" in r] == list(range(1, 301))


def test_ui_renders_the_campaign_run_in_headless_chromium(campaign):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    url = f"{campaign['ui']}/runs/flow-run/{campaign['run']['id']}"
    shots = Path(os.environ.get("RLVR_SCREENSHOT_DIR", campaign["root"]))
    shots.mkdir(parents=True, exist_ok=True)
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=20000", "--window-size=1400,1000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    # The single-page app fetched the run from the API and drew it: its name, state and logs
    # (the campaign's lines about each round).
    assert "Can't connect to Server API" not in dom
    assert campaign["run"]["name"] in dom and "Completed" in dom, dom[-2000:]
    assert "round 1: " in dom and "round 2: " in dom and "held-out, " in dom, dom[-2000:]
    shot = shots / "campaign-flow-run.png"
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one (blank: ~5 KB)

    # A GRPO summary artifact: the UI renders the embedded plot as an image.
    round2 = [r for r in campaign["api"].subflows(campaign["run"]["id"]) if r["name"] == "round-2"][-1]
    summary = [a for a in campaign["api"].artifacts(round2["id"]) if a["type"] == "markdown" and a["data"].startswith("# grpo")]
    url = f"{campaign['ui']}/artifacts/artifact/{summary[-1]['id']}"
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "<img" in dom and 'src="data:image/png;base64,' in dom and "Verifiers" in dom, dom[-2000:]
    subprocess.run([*flags[:-1], "--window-size=1400,2600", f"--screenshot={shots / 'grpo-summary.png'}", url],
                   capture_output=True, timeout=120, check=True)


def test_out_of_bounds_parameter_is_refused_with_its_field_path(served):
    api = served["api"]
    deployment = api.send("GET", "/deployments/name/campaign/default").raise_for_status().json()
    assert [s["active"] for s in deployment["schedules"]] == [False]
    assert {"preset", "overrides", "config", "execution"} <= set(deployment["parameter_openapi_schema"]["properties"])
    for parameters, path in (({"config": {"grpo": {"clip_low": 3}}}, "config.grpo.clip_low"),
                             ({"config": {"campaign": {"rounds": 0}}}, "config.campaign.rounds"),
                             ({"preset": "huge"}, "preset"),
                             ({"overrides": ["grpo lr 3"]}, "overrides[0]")):
        refused = api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
        assert refused.status_code == 409, refused.text
        assert path in refused.json()["detail"], refused.text


def test_a_preset_with_overrides_runs_and_a_bad_override_is_refused_with_its_field(served):
    # After the campaign (the same worker serves both): the round deployment, from the UI's two
    # fields. A well-formed override with a bad value passes the server's form check and is refused
    # by the flow before any stage, with the field path, and not retried.
    api, root = served["api"], served["root"]
    deployment = api.send("GET", "/deployments/name/round/default").raise_for_status().json()
    schema = deployment["parameter_openapi_schema"]["properties"]
    shipped = sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))  # every shipped config is a preset
    assert schema["preset"]["enum"] == shipped and schema["preset"]["default"] == "tiny"

    def run(overrides: list[str]) -> dict:
        body = {"parameters": {"preset": "tiny", "overrides": overrides}}
        # A server busy with the runs before may answer 503 for a moment: ask again, as the UI would.
        created = _wait(lambda: (r := api.post(f"/deployments/{deployment['id']}/create_flow_run", body)).status_code != 503
                        and r, 60, "the server to accept the run", interval=2).raise_for_status().json()
        return _wait(lambda: (r := api.flow_run(created["id"]))["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")
                     and r, 600, "the round run to finish", interval=2)

    bad = run([f"output_dir={root / 'bad'}", "grpo.clip_low=3"])
    assert bad["state"]["type"] == "FAILED" and bad["run_count"] == 1
    assert "preset 'tiny': field grpo.clip_low: Input should be less than or equal to 1" in bad["state"]["message"]
    assert not (root / "bad" / "sft").exists()  # refused before any stage ran

    good = run([f"output_dir={root / 'preset'}", "sft.steps=30", "grpo.steps=5"])
    assert good["state"]["type"] == "COMPLETED", good["state"]
    result = json.loads((root / "preset" / "round.json").read_text())
    assert result["stages"]["sft"]["steps"] == 30 and result["stages"]["grpo"]["steps"] == 5


def test_the_run_form_draws_the_preset_choice_overrides_and_the_task_form(served):
    # The deployment's Run page in headless Chromium: the preset as a choice (tiny selected), the
    # overrides as a list, and the full config's task section as a form with a choice of kinds
    # (not a raw JSON box).
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it)")
    deployment = served["api"].send("GET", "/deployments/name/round/default").raise_for_status().json()
    url = f"{served['ui']}/deployments/deployment/{deployment['id']}/run"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--virtual-time-budget=20000", "--window-size=1400,1000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "Can't connect to Server API" not in dom
    for label in ("preset", "overrides", "a shipped config (configs/PRESET.yaml)", "key.sub=value"):
        assert label in dom, label
    assert ">tiny<" in dom  # the preset choice, with its default
    shots = Path(os.environ.get("RLVR_SCREENSHOT_DIR", served["root"]))
    shots.mkdir(parents=True, exist_ok=True)
    subprocess.run([*flags, f"--screenshot={shots / 'round-run-form.png'}", url], capture_output=True, timeout=120,
                   check=True)
    # The task section as the UI draws it: a choice of forms, one per kind of task.
    task = deployment["parameter_openapi_schema"]["definitions"]["RunConfig"]["properties"]["task"]
    assert [option["$ref"].rsplit("/", 1)[1] for option in task["anyOf"]] == ["ArithmeticTaskConfig",
                                                                             "WordProblemTaskConfig",
                                                                             "DatasetTaskConfig"]
