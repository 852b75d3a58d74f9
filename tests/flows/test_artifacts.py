"""Artifact builders: pure functions of metrics rows, checked against numbers worked out by hand."""

from flows.artifacts import campaign_table, metrics_table, stage_summary_markdown, verifier_stats


def test_metrics_table_merges_rows_of_a_step_and_keeps_numeric_columns():
    rows = [{"step": 0, "eval_accuracy": 0.25}, {"step": 1, "loss": 2.0, "note": "x"},
            {"step": 2, "loss": 1.0}, {"step": 2, "eval_accuracy": 0.5}]
    assert metrics_table(rows) == [
        {"step": 0, "eval_accuracy": 0.25, "loss": None},
        {"step": 1, "eval_accuracy": None, "loss": 2.0},
        {"step": 2, "eval_accuracy": 0.5, "loss": 1.0},
    ]


def test_metrics_table_thins_evenly_and_keeps_the_last_step():
    rows = [{"step": s, "loss": 1 / (s + 1)} for s in range(101)]  # steps 0..100
    table = metrics_table(rows, max_rows=5)
    # stride (101 - 1) / (5 - 1) = 25 -> steps 0, 25, 50, 75, 100; 1/26 = 0.038461538... -> 5 digits
    assert [r["step"] for r in table] == [0, 25, 50, 75, 100]
    assert table[1]["loss"] == 0.038462


def test_verifier_stats_from_aggregate_verdict_counts():
    # step 1: 6 ok, 1 timeout, 1 error; step 2: 8 ok -> 16 verdicts: ok 14/16 = .875, timeout and error 1/16 = .0625
    rows = [{"step": 1, "verdict_ok": 6, "verdict_timeout": 1, "verdict_error": 1},
            {"step": 2, "verdict_ok": 8, "verdict_timeout": 0, "verdict_error": 0}]
    assert verifier_stats(rows) == [{"verifier": "(all)", "verdicts": 16, "ok_rate": 0.875,
                                     "timeout_rate": 0.0625, "error_rate": 0.0625, "reward_mean": None,
                                     "latency_s_mean": None}]


def test_verifier_stats_per_verifier_with_latency():
    # math: 3 ok + 1 timeout over two steps, latency (0.01 + 0.03) / 2 = 0.02, reward (2 * 0.5 + 1 * 1.0) / 3;
    # code: 2 ok + 2 error, never timed
    rows = [{"step": 1, "verifier/math/ok": 2, "verifier/math/timeout": 1, "verifier/math/latency_s": 0.01,
             "verifier/math/reward_mean": 0.5, "verifier/code/ok": 2, "verifier/code/error": 2, "verdict_ok": 4},
            {"step": 2, "verifier/math/ok": 1, "verifier/math/latency_s": 0.03, "verifier/math/reward_mean": 1.0}]
    assert verifier_stats(rows) == [
        {"verifier": "code", "verdicts": 4, "ok_rate": 0.5, "timeout_rate": 0.0, "error_rate": 0.5,
         "reward_mean": None, "latency_s_mean": None},
        {"verifier": "math", "verdicts": 4, "ok_rate": 0.75, "timeout_rate": 0.25, "error_rate": 0.0,
         "reward_mean": 0.6667, "latency_s_mean": 0.02},
    ]


def test_summary_embeds_the_plot_and_lists_verifiers():
    md = stage_summary_markdown("grpo", {"stage": "grpo", "model": "run/grpo/final", "steps": 2},
                                [{"step": 1, "reward_mean": 0.5, "verdict_ok": 4}], b"\x89PNG fake")
    assert md.startswith("# grpo\n")
    assert "| model | run/grpo/final |" in md and "| steps | 2 |" in md
    assert "![grpo metrics](data:image/png;base64,iVBORyBmYWtl)" in md  # base64 of b"\x89PNG fake"
    assert "## Verifiers" in md and "| (all) | 4 | 1.0 |" in md


def test_summary_of_an_evaluation_tables_each_model():
    md = stage_summary_markdown("evaluate", {"stage": "evaluate", "sft": {"accuracy": 0.25, "n": 8},
                                             "grpo": {"accuracy": 0.5, "n": 8}}, [], None)
    assert "| sft | 0.25 | 8 |" in md and "| grpo | 0.5 | 8 |" in md
    assert "data:image" not in md and "## Verifiers" not in md


def test_campaign_table_rows():
    history = [{"event": "start", "checkpoint": "tiny", "metrics": {"heldout_accuracy": 0.0}},
               {"event": "promoted", "round": 1, "version": "v1-round-1", "checkpoint": "r1",
                "metrics": {"heldout_accuracy": 0.123456789, "kl": 0.5}},
               {"event": "rejected", "round": 2, "checkpoint": "r2", "metrics": {"heldout_accuracy": 0.1},
                "reasons": ["held-out accuracy 0.1 < 0.12", "KL too high"]}]
    assert campaign_table(history) == [
        {"round": None, "decision": "start", "version": None, "heldout_accuracy": 0.0, "reasons": None,
         "checkpoint": "tiny"},
        {"round": 1, "decision": "promoted", "version": "v1-round-1", "heldout_accuracy": 0.12346, "kl": 0.5,
         "reasons": None, "checkpoint": "r1"},
        {"round": 2, "decision": "rejected", "version": None, "heldout_accuracy": 0.1,
         "reasons": "held-out accuracy 0.1 < 0.12; KL too high", "checkpoint": "r2"},
    ]


def test_a_tripped_guard_shows_its_reason_and_the_last_step():
    from flows.artifacts import guard_markdown

    reason = ("pipeline.trainers.grpo exited with code 3 after 6 s: grpo stopped by the run-health guard: "
              "100% of the verdicts of the last 5 steps were masked")
    md = guard_markdown("grpo", reason, [{"step": 5, "verdict_error": 32, "reward_mean": None}])
    assert md.startswith("# grpo stopped by a run-health guard\n\ngrpo stopped by the run-health guard: 100%")
    assert "exited with code" not in md and "| verdict_error | 32 |" in md
