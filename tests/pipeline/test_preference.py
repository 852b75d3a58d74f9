import json

import pytest

from errors import DataError
from pipeline.config import load_config
from pipeline.preference import (
    BinaryFeedback,
    PreferencePair,
    builtin_preference_rows,
    encode_pairs,
    load_preference_data,
    pack_pairs,
    parse_binary,
    parse_pairs,
)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_ranking_row_expands_to_its_ordered_pairs():
    row = {"prompt": "q", "responses": ["b", "d", "a", "c"], "ranking": [2, 0, 3, 1]}  # a > b > c > d
    pairs = parse_pairs([row], "f.jsonl")
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]


def test_a_ranking_with_ties_pairs_only_across_tiers():
    # scores kept by a generate_preferences stage ride along, unread
    row = {"prompt": "q", "responses": ["w", "r1", "r2"], "scores": [0, 1, 1], "ranking": [[1, 2], [0]]}
    pairs = parse_pairs([row], "f.jsonl")
    assert [(p.chosen, p.rejected) for p in pairs] == [("r1", "w"), ("r2", "w")]


def test_pair_rows_keep_their_margin_and_binary_rows_become_kto_rows():
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b", "margin": 2}, {"prompt": "q", "completion": "c", "label": False}]
    assert parse_pairs(rows, "f", skip_binary=True) == [PreferencePair("q", "a", "b", 2.0)]
    assert parse_binary(rows, "f") == [BinaryFeedback("q", "a", True), BinaryFeedback("q", "b", False),
                                       BinaryFeedback("q", "c", False)]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "q", "chosen": "a"}, "row 2: field 'rejected' must be non-empty text \\(missing"),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, "row 2: field 'prompt'"),
        ({"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 1, 1]}, "row 2: field 'ranking' must be a permutation of 0..2"),
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [0, 2]}, "row 2: field 'ranking' must be a permutation"),
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [0]}, "row 2: field 'ranking' must be a permutation"),
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [[0, 1], []]}, "row 2: field 'ranking' must be a permutation"),
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [[0, 0], 1]}, "row 2: field 'ranking' must be a permutation"),
        ({"prompt": "q", "responses": ["a"], "ranking": [0]}, "row 2: field 'responses' must be a list of at least 2"),
        ({"prompt": "q", "responses": ["a", 3], "ranking": [0, 1]}, "row 2: responses\\[1\\]"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "row 2: field 'margin' must be a number"),
        ({"prompt": "q", "text": "a"}, "row 2: not a preference row"),
    ],
)
def test_bad_rows_are_rejected_with_the_file_and_row_number(tmp_path, row, message):
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    path = _write(tmp_path / "prefs.jsonl", [good, row, good])
    cfg = load_config(None, [f"preference.path={path}", "preference.eval_size=1"])
    with pytest.raises(DataError, match=message) as err:
        load_preference_data(cfg)
    assert str(path) in str(err.value)


def test_binary_label_must_be_a_boolean():
    with pytest.raises(DataError, match="row 1: field 'label' must be true or false"):
        parse_binary([{"prompt": "q", "completion": "a", "label": "yes"}], "f")
    with pytest.raises(DataError, match="row 1: a binary"):
        parse_pairs([{"prompt": "q", "completion": "a", "label": True}], "f")


def test_a_file_is_carved_into_held_out_prompts(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(10) for _ in range(2)]
    cfg = load_config(None, [f"preference.path={_write(tmp_path / 'p.jsonl', rows)}", "preference.eval_size=3"])
    data = load_preference_data(cfg)
    held = {p.prompt for p in data.eval_pairs}
    assert len(held) == 3 and len(data.eval_pairs) == 6 and len(data.train_pairs) == 14
    assert not held & {p.prompt for p in data.train_pairs}
    assert len(data.train_binary) == 28  # one desirable, one undesirable per pair


def test_builtin_task_rankings_follow_the_true_order():
    cfg = load_config(None)
    train, held = builtin_preference_rows(cfg.task, 50, 10, 4, seed=3)
    assert len(train) == 50 and len(held) == 10
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    for row in train + held:
        best_first = [row["responses"][i] for i in row["ranking"]]
        gold = str(eval(row["prompt"].rstrip("=")))  # "12+7=" -> "19"
        assert best_first[0] == gold  # correct and terse
        assert best_first[1].startswith(gold) and best_first[1] != gold  # correct, rambling
        assert best_first[2] != gold and best_first[2].lstrip("-").isdigit()  # wrong, terse
        assert best_first[3].startswith(best_first[2]) and best_first[3] != best_first[2]  # wrong, rambling
    assert builtin_preference_rows(cfg.task, 50, 10, 4, seed=3) == (train, held)  # deterministic


def test_builtin_prompts_avoid_the_task_evaluation_split():
    from pipeline.tasks import ArithmeticTask

    cfg = load_config(None, ["task.eval_size=500"])
    train, held = builtin_preference_rows(cfg.task, 300, 50, 4, seed=0)
    eval_prompts = {p.prompt for p in ArithmeticTask(cfg.task).eval_problems}
    assert not eval_prompts & {r["prompt"] for r in train + held}


def test_pairs_pack_chosen_rows_first_and_end_with_the_turn_end():
    from pipeline.models import load_tokenizer, resolve_model

    cfg = load_config(None)
    tokenizer = load_tokenizer(resolve_model("tiny", cfg.model))
    encoded = encode_pairs(tokenizer, [PreferencePair("1+1=", "2", "3 um")], 64)
    batch = pack_pairs(encoded, tokenizer.pad_token_id)
    assert batch.input_ids.shape[0] == 2
    chosen, rejected = encoded[0][1], encoded[0][2]
    assert chosen[-1] == rejected[-1] == tokenizer.convert_tokens_to_ids("<|end|>")
    assert tokenizer.decode(chosen[:-1]) == "2" and tokenizer.decode(rejected[:-1]) == "3 um"


def test_a_generated_directory_replaces_the_configured_preferences(tmp_path):
    train = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b", "chosen_score": 1.0, "rejected_score": 0.0}
             for i in range(5)]
    _write(tmp_path / "train.jsonl", train)
    _write(tmp_path / "eval.jsonl", [{"prompt": "h", "responses": ["x", "y"], "scores": [0, 1], "ranking": [[1], [0]]}])
    cfg = load_config(None, ["preference.path=/nowhere.jsonl"])  # ignored when a generated directory is given
    data = load_preference_data(cfg, str(tmp_path))
    assert [p.prompt for p in data.train_pairs] == [f"q{i}" for i in range(5)]
    assert [(p.prompt, p.chosen, p.rejected) for p in data.eval_pairs] == [("h", "y", "x")]
    (tmp_path / "eval.jsonl").write_text("")  # no held-out rows: the stages say so themselves
    assert load_preference_data(cfg, str(tmp_path)).eval_pairs == []
    with pytest.raises(DataError, match="not a generate_preferences output"):
        load_preference_data(cfg, str(tmp_path / "missing"))
