"""Held-out accuracy: greedy completions scored by the rows' verifiers; the evaluate stage."""

import json
from pathlib import Path

from pipeline.config import ModelConfig, RunConfig
from pipeline.data import PromptRow
from pipeline.evaluate import heldout_accuracy, main
from pipeline.models import load_tokenizer, resolve_model
from pipeline.scoring import Scorer

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")


class _Engine:
    """Answers each prompt with a fixed text (greedy, one completion)."""

    shares_weights = True

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def generate(self, prompts, n, sampling):
        from pipeline.rollout import Rollouts

        self.calls.append((n, sampling))
        texts = [self.answers[i] for i in range(len(prompts))]
        return Rollouts([list(p) for p in prompts], [[1] for _ in texts], [[0.0] for _ in texts], texts,
                        [False] * len(texts), 1)


def test_a_row_is_right_when_its_verdict_is_ok_with_a_positive_reward():
    tokenizer = load_tokenizer(resolve_model("tiny", ModelConfig()))
    rows = [PromptRow("1+1=", "2", "math"), PromptRow("2+2=", "4", "math"), PromptRow("3+3=", "6", "math")]
    engine = _Engine(["2", "5", "the answer is 6"])
    result = heldout_accuracy(engine, tokenizer, rows, Scorer(RunConfig(), {"math"}), max_new_tokens=7)
    assert result["accuracy"] == 2 / 3 and result["n"] == 3 and result["eval_ok"] == 3
    (n, sampling), = engine.calls
    assert n == 1 and sampling.greedy and sampling.max_new_tokens == 7
    assert [s["reward"] for s in result["samples"]] == [1.0, 0.0, 1.0]


def test_the_stage_evaluates_each_input_and_writes_results(tmp_path, capsys):
    cfg_args = ["--config", TINY, f"output_dir={tmp_path}", "task.eval_size=4", "task.sft_size=0"]
    assert main([*cfg_args, "--input", "a=tiny", "--input", "b=tiny"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["stage"] == "evaluate" and set(printed) == {"stage", "a", "b"}
    assert printed["a"] == printed["b"] and printed["a"]["n"] == 4  # the same model twice
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(saved) == {"a", "b"} and len(saved["a"]["samples"]) == 4


def test_without_inputs_the_stage_evaluates_the_configs_model(tmp_path, capsys):
    assert main(["--config", TINY, f"output_dir={tmp_path}", "task.eval_size=2", "task.sft_size=0"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == {"stage", "model"}
