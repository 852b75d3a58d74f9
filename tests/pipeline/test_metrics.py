import json

from pipeline.metrics import MetricsLog, plot_metrics, read_metrics


def test_resume_drops_rows_past_the_checkpoint_and_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in range(1, 6):
        log.log({"step": step, "reward_mean": step / 10})
    with path.open("a") as f:
        f.write('{"step": 6, "rew')  # the process died mid-write
    MetricsLog(path, resume_step=3).log({"step": 4, "reward_mean": 0.9})
    assert [(r["step"], r["reward_mean"]) for r in read_metrics(path)] == [(1, .1), (2, .2), (3, .3), (4, .9)]


def test_non_finite_values_are_written_as_null_and_plots_skip_missing_keys(tmp_path):
    path = tmp_path / "metrics.jsonl"
    MetricsLog(path).log({"step": 1, "kl": float("nan"), "reward_mean": 0.5})
    assert json.loads(path.read_text()) == {"step": 1, "kl": None, "reward_mean": 0.5}
    png = plot_metrics(path, tmp_path / "m.png", ["reward_mean", "kl", "absent"])
    assert png is not None and png.stat().st_size > 1000
    assert plot_metrics(path, tmp_path / "none.png", ["absent"]) is None
