"""The length verifier: DAPO's soft overlong punishment, on the sampled tokens."""

import pytest

from verifiers import ERROR, OK, Context, VerifierConfigError, get
from verifiers.length import LengthVerifier, overlong_penalty


# L_max = 10, L_cache = 4: free up to 6 tokens, then (6 - |y|) / 4 down to -1 at 10, -1 beyond.
@pytest.mark.parametrize("length, penalty", [(0, 0.0), (6, 0.0), (7, -0.25), (8, -0.5), (10, -1.0), (11, -1.0)])
def test_overlong_penalty_by_hand(length, penalty):
    assert overlong_penalty(length, 10, 4) == pytest.approx(penalty)


def test_tokens_come_from_the_context_and_are_never_guessed():
    verifier = get("length", max_length=10, buffer=4)
    contexts = [Context(completion_ids=tuple(range(8))), Context(completion_ids=(1, 2)), Context()]
    verdicts = verifier.verify(["x", "y", "z"], [None] * 3, contexts)
    assert [(v.status, v.reward) for v in verdicts[:2]] == [(OK, -0.5), (OK, 0.0)]
    assert verdicts[2].status == ERROR and "no sampled token ids" in verdicts[2].reason
    # characters need no ids
    chars = get("length", max_length=10, buffer=4, unit="chars").verify(["abcdefgh"], [None])
    assert chars[0].reward == pytest.approx(-0.5)


def test_the_generation_limit_is_the_default_max_length():
    assert LengthVerifier.run_defaults({"max_new_tokens": 6}, {}) == {"max_length": 6}
    assert LengthVerifier.run_defaults({"max_new_tokens": 6}, {"max_length": 9}) == {}
    assert get("length", max_length=10).buffer == 2  # L_max / 5


def test_bad_options_are_one_clear_line():
    with pytest.raises(VerifierConfigError, match="buffer <= max_length"):
        get("length", max_length=4, buffer=5)
    with pytest.raises(VerifierConfigError, match="unit must be"):
        get("length", max_length=4, unit="words")
