"""The format verifier: a regular expression and required tags, table-driven."""

import pytest

from verifiers import OK, VerifierConfigError, get


@pytest.mark.parametrize("options, completion, reward", [
    ({"pattern": r"-?\d+", "full_match": True}, "19", 1.0),
    ({"pattern": r"-?\d+", "full_match": True}, " -7\n", 1.0),  # surrounding whitespace is stripped
    ({"pattern": r"-?\d+", "full_match": True}, "19 I think", 0.0),
    ({"pattern": r"-?\d+"}, "19 I think", 1.0),  # search: a part matching is enough
    ({"required_tags": ["think", "answer"]}, "<think>add</think><answer>19</answer>", 1.0),
    ({"required_tags": ["think", "answer"]}, "<answer>19</answer><think>add</think>", 0.0),  # out of order
    ({"required_tags": ["answer"]}, "<answer>19", 0.0),  # never closed
    ({"required_tags": "answer"}, "x <answer>19</answer> y", 1.0),  # one tag as a string
    # partial credit: 2 checks, the pattern fails and the tag passes -> 1/2
    ({"pattern": r"^\d+$", "required_tags": ["answer"], "partial_credit": True}, "<answer>19</answer>", 0.5),
    ({"pattern": r"^\d+$", "required_tags": ["answer"]}, "<answer>19</answer>", 0.0),
])
def test_format_cases(options, completion, reward):
    [verdict] = get("format", **options).verify([completion], [None])
    assert verdict.status == OK and verdict.reward == reward
    assert bool(verdict.reason) == (reward < 1.0)  # a failed check says which


@pytest.mark.parametrize("options, message", [
    ({}, "needs a `pattern` or `required_tags`"),
    ({"pattern": "(unclosed"}, "not a valid regular expression"),
    ({"required_tags": ["<answer>"]}, "not a tag name"),
])
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(VerifierConfigError, match=message) as info:
        get("format", **options)
    assert "\n" not in str(info.value) and "verifiers.options.format" in str(info.value)
