import json

import pytest

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


class _OneProcess:
    """accelerate's reduce/gather as one process does them."""

    num_processes, device = 1, "cpu"

    def reduce(self, tensor, reduction):
        return tensor


def _collected(rewards, statuses, lengths, truncated, group_size):
    import torch

    from pipeline.rollout import Rollouts
    from pipeline.rollout.collect import Collected
    from verifiers import Verdict

    verdicts = [Verdict(r, s, latency_s=0.5) for r, s in zip(rewards, statuses)]
    n = len(rewards)
    rollouts = Rollouts([[1]] * n, [[7] * k for k in lengths], [[0.0] * k for k in lengths], [""] * n, truncated,
                        group_size)
    return Collected([], rollouts, ["math"] * n, verdicts, torch.tensor(rewards),
                     torch.tensor([v.scored for v in verdicts]))


def test_sample_metrics_count_only_scored_rewards():
    import torch

    from pipeline.metrics import sample_metrics

    c = _collected([1.0, 0.0, 0.0, 1.0], ["ok", "ok", "error", "timeout"], [2, 4, 6, 8], [False, False, True, True], 2)
    keep = torch.tensor([True, True, False, False])
    m = sample_metrics(_OneProcess(), c, keep)
    # scored rewards [1, 0]: mean .5, unbiased std .7071; the masked 0 and 1 are not rewards
    assert m["reward_mean"] == 0.5 and m["reward_std"] == pytest.approx(0.70711, abs=1e-4)
    assert m["accuracy"] == 0.5 and m["groups_kept"] == 1
    assert (m["verdict_ok"], m["verdict_error"], m["verdict_timeout"]) == (2, 1, 1)
    assert m["completion_len"] == 5.0 and m["truncated_frac"] == 0.5


def test_verifier_metrics_count_statuses_and_flags_per_verifier():
    from pipeline.metrics import verifier_metrics
    from verifiers import Verdict

    verdicts = [Verdict(1.0, "ok", latency_s=0.2, flags=("tamper",)), Verdict(0.0, "ok", latency_s=0.4),
                Verdict(0.0, "error", latency_s=0.6, flags=("tamper",)), Verdict(1.0, "ok", latency_s=0.1)]
    m = verifier_metrics(_OneProcess(), verdicts, ["code", "code", "code", "math"], ["code", "math"])
    assert (m["verifier/code/ok"], m["verifier/code/error"], m["verifier/code/timeout"]) == (2, 1, 0)
    assert m["verifier/code/reward_mean"] == 0.5 and m["verifier/code/latency_s"] == pytest.approx(0.4)
    assert m["verifier/code/tamper"] == 2 and "verifier/math/tamper" not in m
    assert m["verifier/math/ok"] == 1 and m["verifier/math/reward_mean"] == 1.0
