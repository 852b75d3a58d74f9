"""generate_preferences: K scored samples per prompt -> preference rows, ties unordered, prompts
without a preference counted and skipped; chunks that resume; bad input in one line."""

import json

import pytest

from errors import DataError
from pipeline.config import load_config
from pipeline.generation.preferences import main, preference_row, preference_rows, run_generate_preferences, score_tiers
from pipeline.preference import load_preference_data
from tests.conftest import REPO, small_overrides


def test_score_tiers_by_hand():
    assert score_tiers([0.5, 1, 0.5, 0]) == [[1], [0, 2], [3]]
    assert score_tiers([1, 1]) == [[0, 1]]


def test_preference_rows_by_hand():
    candidates = [("3", 1.0), ("2", 0.0), ("33", 1.0), ("4", 0.5)]
    assert preference_row("1+2=", candidates, "best_worst") == {
        "prompt": "1+2=", "chosen": "3", "rejected": "2", "chosen_score": 1.0, "rejected_score": 0.0}
    ranking = preference_row("1+2=", candidates, "ranking")
    assert ranking["ranking"] == [[0, 2], [3], [1]] and ranking["scores"] == [1.0, 0.0, 1.0, 0.5]
    assert preference_row("1+2=", [("3", 1.0), ("03", 1.0)], "ranking") is None  # all equal: nothing to prefer


def _line(prompt, *samples):
    return {"prompt": prompt, "samples": [{"text": t, "score": s, "status": "ok" if s is not None else "error",
                                           "truncated": False} for t, s in samples]}


def test_what_becomes_of_each_prompt_is_counted():
    lines = [
        _line("a", ("3", 1.0), ("3", 1.0), ("2", 0.0), ("x", None)),  # a row: "3" > "2"; one masked sample
        _line("b", ("5", 0.0), ("6", 0.0), ("7", 0.0), ("8", 0.0)),  # all equal: skipped
        _line("c", ("1", None), ("2", None), ("3", None), ("4", None)),  # all masked: skipped
        _line("d", ("", 1.0), ("9", 0.0), ("9", 0.0), ("4", 1.0)),  # blank text left out: "4" > "9"
    ]
    rows, counts = preference_rows(lines, "ranking")
    assert [r["prompt"] for r in rows] == ["a", "d"]
    assert rows[1] == {"prompt": "d", "responses": ["9", "4"], "scores": [0.0, 1.0], "ranking": [[1], [0]]}
    # scores: a 1,1,0 ; b 0,0,0,0 ; d 1,0,0,1 -> a sum of 4 over 11 scored samples
    assert counts == {"prompts": 4, "rows": 2, "pairs": 2, "skipped_equal": 1, "skipped_unscored": 1,
                      "samples": 16, "samples_masked": 5, "samples_blank": 1, "score_mean": pytest.approx(4 / 11)}


def _cfg(tmp_path, *extra):
    # The untrained tiny model's completions vary in length, so the `length` verifier (counting
    # characters: free up to 4, then -1/8 per character) scores the samples of a prompt differently.
    return load_config(REPO / "configs" / "tiny.yaml", [
        *small_overrides(tmp_path / "run"), "generate_preferences.prompts=8", "generate_preferences.eval_prompts=4",
        "generate_preferences.samples_per_prompt=4", "generate_preferences.chunk_size=3",
        "generate_preferences.verifier=length", "verifiers.options.length={max_length: 12, buffer: 8, unit: chars}", *extra])


def test_the_stage_writes_rows_the_preference_stages_read_and_resumes_by_chunk(tmp_path):
    cfg = _cfg(tmp_path, "generate_preferences.pairs=ranking")
    result = run_generate_preferences(cfg)
    out = cfg.output_path / "generate_preferences"
    assert result["preferences"] == str(out) and result["prompts"] == 8 and result["samples"] == 32
    assert result["rows"] + result["skipped_equal"] + result["skipped_unscored"] == 8 and result["rows"] > 0
    samples = [json.loads(line) for line in (out / "train.samples.jsonl").read_text().splitlines()]
    assert [s["chunk"] for s in samples] == [0, 0, 0, 1, 1, 1, 2, 2]  # 8 prompts in chunks of 3
    assert all(len(s["samples"]) == 4 and s["verifier"] == "length" for s in samples)
    data = load_preference_data(cfg, result["preferences"])
    assert len(data.train_pairs) == result["pairs"] and {p.prompt for p in data.train_pairs} <= {s["prompt"] for s in samples}
    assert json.loads((out / "summary.json").read_text())["rows"] == result["rows"]

    # Stopped after its first chunk: the rerun keeps that chunk and samples the rest exactly as before.
    full = (out / "train.samples.jsonl").read_text()
    (out / "train.progress.json").write_text(json.dumps({**json.loads((out / "train.progress.json").read_text()),
                                                          "chunks": 1}))
    again = run_generate_preferences(cfg)
    assert (out / "train.samples.jsonl").read_text() == full
    assert {**again, "generation_seconds": 0} == {**result, "generation_seconds": 0}
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    # Another seed samples other prompts (a campaign's next round).
    other = run_generate_preferences(cfg.model_copy(update={"seed": 1, "output_dir": str(tmp_path / "other")}))
    other_prompts = {json.loads(line)["prompt"] for line in
                     (tmp_path / "other" / "generate_preferences" / "train.samples.jsonl").read_text().splitlines()}
    assert other["prompts"] == 8 and other_prompts != {s["prompt"] for s in samples}


def test_a_model_whose_samples_all_score_the_same_is_one_clear_line(tmp_path):
    # The untrained model never answers right: with `math`, every prompt's K samples score 0.
    cfg = _cfg(tmp_path, "generate_preferences.verifier=math")
    with pytest.raises(DataError, match=r"none of 8 prompts gave a preference row: the K=4 samples of 8 all scored the same"):
        run_generate_preferences(cfg)


@pytest.mark.parametrize("override, message", [
    ("generate_preferences.samples_per_prompt=0", "field generate_preferences.samples_per_prompt: Input should be greater than or equal to 2"),
    ("generate_preferences.verifier=math=1,fromat=0.2", "composite verifier 'math=1,fromat=0.2': Unknown verifier 'fromat'"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, override, message):
    code = main(["--config", str(REPO / "configs" / "tiny.yaml"), f"output_dir={tmp_path}", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith("error: ")


def test_samples_of_another_policy_in_the_same_place_are_not_reused(tmp_path):
    from pipeline.trainers.sft import train_sft

    cfg = _cfg(tmp_path, "sft.steps=2")
    policy = train_sft(cfg)["model"]
    run_generate_preferences(cfg, init=policy)
    samples = cfg.output_path / "generate_preferences" / "train.samples.jsonl"
    first = samples.read_text()
    # The policy is retrained where it was: the stage samples again instead of resuming.
    train_sft(cfg.model_copy(update={"seed": 5, "output_dir": str(tmp_path / "other")}))
    import shutil

    shutil.rmtree(policy)
    shutil.copytree(tmp_path / "other" / "sft" / "final", policy)
    run_generate_preferences(cfg, init=policy)
    assert samples.read_text() != first


def test_held_out_prompts_the_training_stream_also_drew_are_dropped(tmp_path):
    # 2 operands of 0..3 and one operation: 16 problems, so 8 training and 8 held-out prompts overlap.
    cfg = _cfg(tmp_path, "task.max_operand=3", "task.operations=['+']", "task.sft_size=0", "task.eval_size=1",
               "generate_preferences.eval_prompts=8")
    result = run_generate_preferences(cfg)
    out = cfg.output_path / "generate_preferences"
    train = {json.loads(line)["prompt"] for line in (out / "train.samples.jsonl").open()}
    drawn = [json.loads(line)["prompt"] for line in (out / "eval.samples.jsonl").open()]
    held = {json.loads(line)["prompt"] for line in (out / "eval.jsonl").open()}
    assert result["eval_dropped_as_seen"] == sum(p in train for p in drawn) > 0
    assert held and not held & train
