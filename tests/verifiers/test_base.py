import logging
import math

import pytest

from verifiers.base import (
    ERROR,
    OK,
    TIMEOUT,
    PreparesReferences,
    Verdict,
    Verifier,
    prepare_references,
    run_verifier,
    summarize,
)


class _Echo:
    """Rewards 1 when the completion equals the reference."""

    name = "echo"

    def verify(self, completions, references):
        return [Verdict(float(c == r), OK, latency_s=0.5) for c, r in zip(completions, references)]


class _Crashing:
    name = "crashing"

    def verify(self, completions, references):
        raise ConnectionError("sandbox unreachable")


class _DropsOne:
    name = "drops-one"

    def verify(self, completions, references):
        return [Verdict(1.0, OK) for _ in completions[1:]]


class _ReturnsFloats:
    name = "floats"

    def verify(self, completions, references):
        return [1.0 for _ in completions]


def test_verdict_flags_are_a_tuple_of_labels():
    assert Verdict(0.0, OK).flags == ()
    assert Verdict(0.0, OK, flags=["tamper"]).flags == ("tamper",)


def test_verdict_is_frozen_and_scored_only_when_ok():
    v = Verdict(1, OK)
    assert v.reward == 1.0 and isinstance(v.reward, float)
    assert v.scored
    assert not Verdict(0.0, TIMEOUT).scored
    assert not Verdict(0.0, ERROR, "boom").scored
    with pytest.raises(AttributeError):
        v.reward = 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reward": 1.0, "status": "wrong"}, "status 'wrong'"),
        ({"reward": math.nan, "status": OK}, "finite"),
        ({"reward": math.inf, "status": OK}, "finite"),
        ({"reward": 1.0, "status": OK, "latency_s": -1.0}, "latency_s"),
        ({"reward": 1.0, "status": OK, "flags": "tamper"}, "flags"),
        ({"reward": 1.0, "status": OK, "flags": ("",)}, "flags"),
    ],
)
def test_verdict_rejects_invalid_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Verdict(**kwargs)


def test_protocol_is_checkable_at_runtime():
    assert isinstance(_Echo(), Verifier)
    assert not isinstance(object(), Verifier)


def test_run_verifier_returns_verdicts_unchanged():
    verdicts = run_verifier(_Echo(), ["a", "b"], ["a", "c"])
    assert verdicts == [Verdict(1.0, OK, latency_s=0.5), Verdict(0.0, OK, latency_s=0.5)]


def test_run_verifier_masks_an_exception_as_error_verdicts(caplog):
    with caplog.at_level(logging.WARNING, logger="verifiers.base"):
        verdicts = run_verifier(_Crashing(), ["a", "b", "c"], [1, 2, 3])
    assert [v.status for v in verdicts] == [ERROR] * 3
    assert all(not v.scored and v.reward == 0.0 for v in verdicts)
    assert verdicts[0].reason == "verifier 'crashing' raised ConnectionError: sandbox unreachable"
    assert "sandbox unreachable" in caplog.text


def test_run_verifier_raises_on_a_wrong_verdict_count():
    with pytest.raises(RuntimeError, match="'drops-one' returned 1 verdicts for 2 completions"):
        run_verifier(_DropsOne(), ["a", "b"], [1, 2])


def test_run_verifier_raises_on_a_non_verdict():
    with pytest.raises(RuntimeError, match="returned float, not a Verdict"):
        run_verifier(_ReturnsFloats(), ["a"], [1])


def test_run_verifier_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 completions but 1 references"):
        run_verifier(_Echo(), ["a", "b"], ["a"])


def test_summarize_counts_statuses_and_averages_ok_rewards_only():
    verdicts = [
        Verdict(1.0, OK, latency_s=0.1),
        Verdict(0.0, OK, latency_s=0.3),
        Verdict(0.0, TIMEOUT, latency_s=2.0),
        Verdict(0.0, ERROR, latency_s=0.0),
    ]
    s = summarize(verdicts)
    # reward mean over the two ok verdicts: (1 + 0) / 2; latency over all four: 2.4 / 4
    assert s == {
        "n": 4, "ok": 2, "timeout": 1, "error": 1, "reward_mean": 0.5, "latency_mean_s": pytest.approx(0.6)
    }


def test_summarize_reports_no_reward_when_nothing_was_scored():
    assert summarize([Verdict(0.0, ERROR)])["reward_mean"] is None
    empty = {"n": 0, "ok": 0, "timeout": 0, "error": 0, "reward_mean": None, "latency_mean_s": None}
    assert summarize([]) == empty


class _Integers(_Echo):
    """Prepares references by reading them as integers."""

    name = "integers"

    def prepare_reference(self, reference):
        try:
            return int(reference)
        except (TypeError, ValueError):
            raise ValueError(f"{reference!r} is not an integer") from None


def test_prepare_references_reads_each_reference_once_or_passes_them_through():
    assert isinstance(_Integers(), PreparesReferences) and not isinstance(_Echo(), PreparesReferences)
    assert prepare_references(_Integers(), ["1", " 2", 3]) == [1, 2, 3]
    assert prepare_references(_Echo(), ["x", None]) == ["x", None]  # no prepare_reference: unchanged


def test_prepare_references_names_every_unreadable_row_with_its_reason():
    with pytest.raises(ValueError) as raised:
        prepare_references(_Integers(), ["1", "two", "3", None], rows=["a.jsonl:1", "a.jsonl:2", "a.jsonl:3", "a.jsonl:4"])
    message = str(raised.value)
    assert message.startswith("2 reference(s) that verifier 'integers' cannot read:")
    assert "a.jsonl:2: 'two' is not an integer" in message and "a.jsonl:4: None is not an integer" in message
    assert "a.jsonl:1" not in message and "a.jsonl:3" not in message


def test_prepare_references_lists_a_few_problems_and_counts_the_rest():
    with pytest.raises(ValueError, match=r"^7 reference\(s\) .* \(and 2 more\):") as raised:
        prepare_references(_Integers(), ["x"] * 7)
    assert "row 4:" in str(raised.value) and "row 5:" not in str(raised.value)
