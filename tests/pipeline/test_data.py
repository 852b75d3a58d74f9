import json

import pytest

from errors import DataError
from pipeline.config import ArithmeticTaskConfig, DataSourceConfig, WordProblemTaskConfig, load_config
from pipeline.data import EpochSampler, build_task_data, load_rows
from pipeline.tasks import ArithmeticTask, WordProblemTask


def test_arithmetic_task_is_deterministic_and_splits_are_disjoint():
    cfg = ArithmeticTaskConfig(sft_size=300, eval_size=100)
    a, b = ArithmeticTask(cfg), ArithmeticTask(cfg)
    assert a.eval_problems == b.eval_problems and a.sft_problems == b.sft_problems
    held = {p.prompt for p in a.eval_problems}
    assert not held & {p.prompt for p in a.sft_problems}
    for step in range(20):
        assert not held & {p.prompt for p in a.rl_problems(step, 64)}
    assert a.rl_problems(3, 16) == b.rl_problems(3, 16) != a.rl_problems(4, 16)


@pytest.mark.parametrize(
    "prompt,answer", [("12+7=", "19"), ("3-10=", "-7"), ("2+3*4=", "14"), ("5*6-2*3=", "24")]
)
def test_arithmetic_answers_follow_precedence(prompt, answer):
    from pipeline.tasks.arithmetic import _evaluate
    import re

    numbers = [int(x) for x in re.findall(r"\d+", prompt)]
    ops = re.findall(r"[+\-*]", prompt)
    assert str(_evaluate(numbers, ops)) == answer


def test_too_many_distinct_problems_is_a_clear_error():
    with pytest.raises(ValueError, match="max_operand"):
        ArithmeticTask(ArithmeticTaskConfig(max_operand=3, operations=["+"], sft_size=100, eval_size=10))


def _operation(prompt: str) -> tuple[int, str, int]:
    """(a, op, b) read back from a word problem's story."""
    import re

    a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
    op = "*" if "each" in prompt else "-" if ("gives" in prompt or "takes" in prompt) else "+"
    return a, op, b


def test_word_problems_answer_their_stories_and_keep_held_out_operations_apart():
    cfg = WordProblemTaskConfig(operations=["+", "-", "*"], sft_size=50, eval_size=100, instruction="Be brief.")
    a, b = WordProblemTask(cfg), WordProblemTask(cfg)
    assert a.eval_problems == b.eval_problems and a.rl_problems(3, 16) == b.rl_problems(3, 16) != a.rl_problems(4, 16)
    problems = a.eval_problems + a.sft_problems + [p for step in range(20) for p in a.rl_problems(step, 64)]
    for p in problems:
        x, op, y = _operation(p.prompt)
        expected = {"+": x + y, "-": x - y, "*": x * y}[op]
        assert p.prompt.endswith("? Be brief.") and str(expected) in p.answer and expected >= 0
    held = {_operation(p.prompt) for p in a.eval_problems}
    assert len(held) == 100  # distinct operations, not just distinct wordings
    assert not held & {_operation(p.prompt) for p in problems[100:]}
    assert {_operation(p.prompt)[1] for p in problems} == {"+", "-", "*"}
    assert a.sft_problems[0].answer.endswith(f"The answer is {a.sft_problems[0].answer.split()[-1][:-1]}.")


def test_word_problems_need_operations_to_spare():
    with pytest.raises(ValueError, match="distinct problems"):
        WordProblemTaskConfig(operations=["+"], min_operand=1, max_operand=5, eval_size=25)


def test_a_word_problem_config_builds_its_task_data():
    data = build_task_data(load_config(None, ["task.kind=word_problems", "task.eval_size=30"]))
    assert len(data.eval_rows) == 30 and data.verifier_names() == {"math"}
    assert all(r.answer.isdigit() for r in data.eval_rows + data.rl_batch(0, 8))


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_malformed_jsonl_row_names_file_and_row(tmp_path):
    path = tmp_path / "rl.jsonl"
    _write_jsonl(path, [{"prompt": "1+1=", "answer": "2"}, '{"prompt": "2+2=", "answer": ', {"prompt": "x"}])
    with pytest.raises(DataError) as err:
        load_rows(DataSourceConfig(path=str(path)), required=("prompt", "answer"))
    assert f"{path}: row 2: not valid JSON" in str(err.value)


def test_missing_field_names_file_row_and_field(tmp_path):
    path = tmp_path / "rl.jsonl"
    _write_jsonl(path, [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2="}])
    with pytest.raises(DataError, match=r"row 2: field 'answer' is missing"):
        load_rows(DataSourceConfig(path=str(path)), required=("prompt", "answer"))


def test_dataset_task_carves_a_held_out_split_and_maps_fields(tmp_path):
    path = tmp_path / "gsm.jsonl"
    _write_jsonl(path, [{"question": f"q{i}", "answer": f"work #### {i}"} for i in range(50)])
    cfg = load_config(None, [
        "task.kind=dataset", f"task.rl.path={path}", "task.rl.prompt_field=question", "task.eval_size=10",
        "task.prompt_template='Solve: {prompt}'",
    ])
    data = build_task_data(cfg)
    assert len(data.eval_rows) == 10
    held = {r.prompt for r in data.eval_rows}
    seen = {r.prompt for step in range(10) for r in data.rl_batch(step, 8)}
    assert not held & seen and len(seen) == 40
    assert all(r.prompt.startswith("Solve: q") for r in data.eval_rows)


def test_parquet_loads_through_datasets(tmp_path):
    import datasets

    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list([{"prompt": "1+1=", "answer": "2"}]).to_parquet(str(path))
    rows = load_rows(DataSourceConfig(path=str(path)), required=("prompt", "answer"))
    assert rows == [{"prompt": "1+1=", "answer": "2"}]


def test_epoch_sampler_covers_each_item_once_per_epoch():
    sampler = EpochSampler(10, seed=3)
    first = sampler.batch(0, 5) + sampler.batch(1, 5)
    assert sorted(first) == list(range(10))
    assert EpochSampler(10, seed=3).batch(1, 5) == sampler.batch(1, 5)


def test_rows_keep_their_other_columns_and_may_name_a_composite(tmp_path):
    path = tmp_path / "rl.jsonl"
    _write_jsonl(path, [
        {"question": f"q{i}", "answer": str(i), "topic": "sums", "difficulty": i,
         "check": {"math": 1, "format": 0.2} if i % 2 else "math"} for i in range(12)])
    cfg = load_config(None, ["task.kind=dataset", f"task.rl.path={path}", "task.rl.prompt_field=question",
                             "task.rl.verifier_field=check", "task.eval_size=2"])
    data = build_task_data(cfg)
    rows = data.eval_rows + [r for step in range(5) for r in data.rl_batch(step, 2)]
    by_prompt = {r.prompt: r for r in rows}
    assert len(by_prompt) == 12
    assert by_prompt["q3"].row == {"topic": "sums", "difficulty": 3, "check": {"math": 1, "format": 0.2}}
    assert by_prompt["q3"].verifier == "math=1,format=0.2" and by_prompt["q4"].verifier == "math"
    assert data.verifier_names() == {"math", "math=1,format=0.2"}


def test_a_bad_composite_in_a_row_names_file_row_and_field(tmp_path):
    path = tmp_path / "rl.jsonl"
    _write_jsonl(path, [{"prompt": "1+1=", "answer": "2", "check": {"math": "heavy"}}] * 3)
    cfg = load_config(None, ["task.kind=dataset", f"task.rl.path={path}", "task.rl.verifier_field=check",
                             "task.eval_size=1"])
    with pytest.raises(DataError, match=r"rl.jsonl: row 1: field 'check' must be a verifier name or a mapping"):
        build_task_data(cfg)


def test_prompt_streams_are_independent_and_deterministic():
    cfg = load_config(None, [])
    data, again = build_task_data(cfg), build_task_data(cfg)
    main, refill = data.rl_batch(3, 16), data.rl_batch(3, 16, "refill/1/0")
    assert main == again.rl_batch(3, 16)  # the default stream is the RL stages' own, unchanged
    assert refill == again.rl_batch(3, 16, "refill/1/0") != main
    assert not {r.prompt for r in refill} & {r.prompt for r in data.eval_rows}


def test_eval_verifier_scores_the_held_out_rows():
    data = build_task_data(load_config(None, ["task.verifier=shaped", "eval.verifier=math"]))
    assert {r.verifier for r in data.eval_rows} == {"math"}
    assert data.rl_batch(0, 2)[0].verifier == "shaped"
