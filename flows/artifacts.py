"""What the Prefect UI shows of a stage and a campaign: a table of the stage's metrics, a markdown
summary with its plot embedded (a PNG as a data: URI, which the UI renders inline), verifier
statistics for stages that score completions, and a table of a campaign's rounds.

The builders are pure functions of metrics rows (tested without a server); `publish_*` sends them.
"""

import base64
import json
import math
from pathlib import Path
from typing import Any

from pipeline.metrics import read_metrics

__all__ = [
    "metrics_table",
    "verifier_stats",
    "stage_summary_markdown",
    "campaign_table",
    "publish_stage_artifacts",
    "guard_markdown",
    "publish_guard_artifact",
    "publish_campaign_artifact",
]

_STATUSES = ("ok", "timeout", "error")  # the Verdict statuses; a wrong answer is ok with a low reward


def metrics_table(rows: list[dict[str, Any]], max_rows: int = 60) -> list[dict[str, Any]]:
    """The numeric columns of metrics.jsonl, `step` first, thinned evenly to at most `max_rows` (the
    last row always kept), values rounded to 5 significant digits. Rows with the same step (an
    evaluation logged after a training row) are merged."""
    by_step: dict[int, dict[str, Any]] = {}
    for row in rows:
        if "step" in row:
            by_step.setdefault(int(row["step"]), {}).update(row)
    merged = [by_step[s] for s in sorted(by_step)]
    columns = ["step"] + sorted({k for r in merged for k, v in r.items()
                                 if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if len(merged) > max_rows:
        stride = (len(merged) - 1) / (max_rows - 1)
        merged = [merged[round(i * stride)] for i in range(max_rows)]
    return [{c: _round(r.get(c)) for c in columns} for r in merged]


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.5g}")
    return value


def verifier_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdict status rates (and mean latency where logged) per verifier, summed over the steps.

    Reads `verifier/<name>/<status>` counts, `verifier/<name>/reward_mean` (over that step's ok
    verdicts) and `verifier/<name>/latency_s` (mean seconds per verdict in that step) when the trainer logs them per verifier, and otherwise the all-verifier
    counts `verdict_<status>` as one row named "(all)".
    """
    counts: dict[str, dict[str, float]] = {}
    latency: dict[str, list[float]] = {}
    reward_sums: dict[str, float] = {}
    for row in rows:
        for key, value in row.items():
            if value is None:
                continue
            if key.startswith("verifier/"):
                _, name, field = key.split("/", 2)
                if field == "latency_s":
                    latency.setdefault(name, []).append(float(value))
                elif field == "reward_mean":  # mean over that step's ok verdicts: weight by their count
                    reward_sums[name] = reward_sums.get(name, 0.0) + float(value) * float(row.get(f"verifier/{name}/ok") or 0)
                elif field in _STATUSES:
                    counts.setdefault(name, dict.fromkeys(_STATUSES, 0.0))[field] += value
    if not counts:
        for row in rows:
            for status in _STATUSES:
                if row.get(f"verdict_{status}") is not None:
                    counts.setdefault("(all)", dict.fromkeys(_STATUSES, 0.0))[status] += row[f"verdict_{status}"]
    table = []
    for name, c in sorted(counts.items()):
        total = sum(c.values())
        entry: dict[str, Any] = {"verifier": name, "verdicts": int(total)}
        for status in _STATUSES:
            entry[f"{status}_rate"] = round(c[status] / total, 4) if total else None
        entry["reward_mean"] = round(reward_sums[name] / c["ok"], 4) if name in reward_sums and c["ok"] else None
        lat = latency.get(name)
        entry["latency_s_mean"] = round(sum(lat) / len(lat), 5) if lat else None
        table.append(entry)
    return table


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def stage_summary_markdown(stage: str, result: dict[str, Any], rows: list[dict[str, Any]],
                           plot_png: bytes | None) -> str:
    """A stage's summary: its result, last metrics, the plot inline, and verifier statistics."""
    parts = [f"# {stage}"]
    shown = {k: v for k, v in result.items() if k != "stage" and not isinstance(v, (dict, list))}
    if shown:
        parts.append(_md_table([{"result": k, "value": v} for k, v in shown.items()]))
    nested = {k: v for k, v in result.items() if isinstance(v, dict)}
    if nested:  # evaluate: one entry per model
        parts.append("## Held-out evaluation\n\n" + _md_table(
            [{"model": k, **{f: v.get(f) for f in ("accuracy", "n")}} for k, v in nested.items()]))
    if plot_png:
        encoded = base64.b64encode(plot_png).decode()
        parts.append(f"## Metrics\n\n![{stage} metrics](data:image/png;base64,{encoded})")
    stats = verifier_stats(rows)
    if stats:
        parts.append("## Verifiers\n\nShare of verdicts by status over the stage (timeouts and errors "
                     "are masked out of the loss).\n\n" + _md_table(stats))
    if rows:
        last = metrics_table(rows)[-1]
        parts.append("## Last step\n\n" + _md_table([{"metric": k, "value": v} for k, v in last.items()]))
    return "\n\n".join(parts) + "\n"


def campaign_table(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per registry decision (the start, each round's promotion or rejection, rollbacks):
    the held-out metric and the other gate measurements, the reasons of a rejection."""
    rows = []
    for entry in history:
        metrics = entry.get("metrics") or {}
        rows.append({"round": entry.get("round"), "decision": entry["event"], "version": entry.get("version"),
                     **{k: _round(v) for k, v in metrics.items()},
                     "reasons": "; ".join(entry.get("reasons", [])) or None, "checkpoint": entry.get("checkpoint")})
    return rows


def publish_stage_artifacts(stage: str, stage_dir: Path, result: dict[str, Any]) -> None:
    """A table of the stage's metrics and a markdown summary, attached to the current task run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    stage_dir = Path(stage_dir)
    rows = read_metrics(stage_dir / "metrics.jsonl")
    if rows:
        create_table_artifact(metrics_table(rows), description=f"{stage}: metrics per step ({stage_dir})")
    if stage == "evaluate" and (stage_dir / "results.json").is_file():
        results = json.loads((stage_dir / "results.json").read_text())
        samples = [{"model": name, **{k: s.get(k) for k in ("prompt", "completion", "answer", "status", "reward")}}
                   for name, r in results.items() for s in r.get("samples", [])]
        if samples:
            create_table_artifact(samples, description="evaluate: sample completions per model")
    png = stage_dir / "metrics.png"
    create_markdown_artifact(stage_summary_markdown(stage, result, rows, png.read_bytes() if png.is_file() else None),
                             description=f"{stage}: summary")


def publish_campaign_artifact(history: list[dict[str, Any]], key: str | None = None) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(campaign_table(history), key=key,
                          description="campaign: the model registry's decisions (promoted, rejected) per round")


def guard_markdown(stage: str, reason: str, rows: list[dict[str, Any]]) -> str:
    """Why a run-health guard stopped a stage, with the last logged step."""
    parts = [f"# {stage} stopped by a run-health guard", reason.split(": ", 1)[-1] if "exited with code" in reason else reason]
    if rows:
        last = metrics_table(rows)[-1]
        parts.append("## Last step\n\n" + _md_table([{"metric": k, "value": v} for k, v in last.items()]))
    return "\n\n".join(parts) + "\n"


def publish_guard_artifact(stage: str, stage_dir: Path, reason: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    rows = read_metrics(Path(stage_dir) / "metrics.jsonl")
    create_markdown_artifact(guard_markdown(stage, reason, rows), description=f"{stage}: stopped by a run-health guard")
