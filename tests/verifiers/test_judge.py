"""The judge verifier: the score from the verdict tokens' probabilities, batched, masked when the
judge gives no usable answer. A random `tiny` judge stands in for a real one (no download)."""

import math

import pytest

from errors import ModelNotFoundError
from verifiers import ERROR, OK, Context, VerifierConfigError, get
from verifiers.judge import yes_probability


def test_yes_probability_by_hand():
    # yes tokens 0 and 1 carry .3 + .1 = .4, the no token 2 carries .2: score .4 / .6, mass .6
    logprobs = [math.log(0.3), math.log(0.1), math.log(0.2), math.log(0.4)]
    score, mass = yes_probability(logprobs, [0, 1], [2])
    assert score == pytest.approx(2 / 3) and mass == pytest.approx(0.6)
    assert yes_probability([-math.inf, -math.inf, 0.0], [0], [1]) == (0.5, 0.0)  # no mass: no preference


def _judge(**options):
    return get("judge", **{"model": "tiny", "rubric": "The answer is right.", "min_mass": 0.0, **options})


def test_scores_are_probabilities_and_do_not_depend_on_the_batch():
    completions = ["19", "20", "7 maybe", "-3"]
    contexts = [Context(prompt=p) for p in ("12+7=", "12+7=", "3+4=", "1-4=")]
    one = _judge(batch_size=1).verify(completions, ["19", "19", "7", "-3"], contexts)
    four = _judge(batch_size=4).verify(completions, ["19", "19", "7", "-3"], contexts)
    assert all(v.status == OK and 0 <= v.reward <= 1 for v in one)
    assert [v.reward for v in one] == pytest.approx([v.reward for v in four], abs=1e-5)
    assert len({round(v.reward, 6) for v in one}) > 1  # the completion matters


def test_a_constitution_scores_the_mean_of_its_principles(tmp_path):
    principles = ["The answer is a number.", "The answer is terse."]
    path = tmp_path / "constitution.yaml"
    path.write_text("principles:\n" + "".join(f"  - {p}\n" for p in principles))
    args = (["19", "20 I think"], ["19", "19"], [Context(prompt="12+7="), Context(prompt="12+7=")])
    each = [_judge(rubric=p).verify(*args) for p in principles]
    both = _judge(rubric=None, constitution=str(path)).verify(*args)
    for i, verdict in enumerate(both):
        assert verdict.reward == pytest.approx((each[0][i].reward + each[1][i].reward) / 2, abs=1e-6)
        assert verdict.reason.startswith("per principle: ")
    lowest = _judge(rubric=None, constitution=str(path), aggregate="min").verify(*args)
    assert lowest[0].reward == pytest.approx(min(each[0][0].reward, each[1][0].reward), abs=1e-6)


def test_no_usable_answer_is_a_masked_verdict():
    # A random judge puts almost nothing on "Yes"/"No": with min_mass .5 that is no answer.
    [verdict] = _judge(min_mass=0.5).verify(["19"], ["19"], [Context(prompt="12+7=")])
    assert verdict.status == ERROR and "no usable answer" in verdict.reason
    [verdict] = _judge(max_length=8).verify(["19"], ["19"], [Context(prompt="12+7=")])
    assert verdict.status == ERROR and "max_length" in verdict.reason


def test_the_template_sees_the_prompt_reference_and_row():
    judge = _judge(template="{row[topic]}: {prompt} {completion} (gold {reference}) {criterion}?")
    ok, lacking = judge.verify(["19", "19"], ["19", "19"], [Context(prompt="12+7=", row={"topic": "sums"}),
                                                           Context(prompt="12+7=", row={})])
    assert ok.status == OK
    assert lacking.status == ERROR and "row column 'topic'" in lacking.reason


def test_a_missing_judge_directory_is_one_clear_line(tmp_path):
    with pytest.raises(ModelNotFoundError, match="verifiers.options.judge.model") as info:
        get("judge", model=str(tmp_path / "no-such-judge"), rubric="x")
    assert "\n" not in str(info.value) and "no-such-judge" in str(info.value)


@pytest.mark.parametrize("options, message", [
    ({"rubric": None}, "exactly one of `rubric`"),
    ({"constitution": "c.yaml"}, "exactly one of `rubric`"),
    ({"template": "{prompt} {criterion}"}, r"must show the judge the \{completion\}"),
    ({"template": "{completion} {answer}"}, "KeyError 'answer'"),
    ({"yes": ["No"], "no": ["No"]}, "share every first token"),
])
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(VerifierConfigError, match=message) as info:
        _judge(**options)
    assert "\n" not in str(info.value)


def test_a_bad_constitution_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("principles: just one string\n")
    for path, message in ((tmp_path / "missing.yaml", "not found"), (bad, "non-empty list of principles")):
        with pytest.raises(VerifierConfigError, match=message):
            _judge(rubric=None, constitution=str(path))
