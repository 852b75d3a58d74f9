"""Composite rewards: a weighted sum of components, any masked component masks the sample."""

import pytest

from errors import ConfigError
from verifiers import ERROR, OK, TIMEOUT, Context, Verdict
from verifiers.composite import CompositeVerifier, composite_weights


class Fixed:
    """Returns the given verdicts, in order; two-argument `verify`, like an old plugin."""

    def __init__(self, name, verdicts):
        self.name, self.verdicts, self.calls = name, verdicts, 0

    def verify(self, completions, references):
        self.calls += 1
        return list(self.verdicts)


class SeesPrompt:
    name = "sees_prompt"
    wants_context = True

    def verify(self, completions, references, contexts):
        return [Verdict(float(c.prompt == "2+2="), OK) for c in contexts]


def test_reward_is_the_weighted_sum_and_each_component_rides_along():
    correct = Fixed("math", [Verdict(1.0, OK), Verdict(0.0, OK, "answer 3 != 4")])
    shape = Fixed("format", [Verdict(1.0, OK), Verdict(0.0, OK, "does not match")])
    length = Fixed("length", [Verdict(-0.5, OK, "8 tokens"), Verdict(0.0, OK)])
    composite = CompositeVerifier("shaped", [("math", 1.0, correct), ("format", 0.2, shape), ("length", 1.0, length)])
    first, second = composite.verify(["4", "3"], ["4", "4"], [Context(), Context()])
    # 1*1 + 0.2*1 + 1*(-0.5) = 0.7 ; 1*0 + 0.2*0 + 1*0 = 0
    assert first.status == OK and first.reward == pytest.approx(0.7)
    assert second.status == OK and second.reward == 0.0
    assert [name for name, _ in first.parts] == ["math", "format", "length"]
    assert first.parts[2][1].reward == -0.5 and first.reason == "length: 8 tokens"
    assert second.reason == "math: answer 3 != 4; format: does not match"
    assert correct.calls == shape.calls == length.calls == 1  # each component once per batch


def test_a_masked_component_masks_the_sample_never_a_silent_zero():
    correct = Fixed("math", [Verdict(1.0, OK), Verdict(1.0, OK)])
    flaky = Fixed("judge", [Verdict(0.0, TIMEOUT, "judge busy"), Verdict(0.8, OK)])
    composite = CompositeVerifier("mix", [("math", 1.0, correct), ("judge", 0.5, flaky)])
    masked, scored = composite.verify(["4", "4"], ["4", "4"])
    assert masked.status == TIMEOUT and not masked.scored and masked.reason == "judge: judge busy"
    assert masked.parts[0][1].reward == 1.0  # what the working component said is kept for the logs
    assert scored.status == OK and scored.reward == pytest.approx(1.4)


def test_a_component_that_raises_masks_its_samples():
    class Crashes:
        name = "crashes"

        def verify(self, completions, references):
            raise RuntimeError("boom")

    composite = CompositeVerifier("mix", [("math", 1.0, Fixed("math", [Verdict(1.0, OK)])), ("crashes", 1.0, Crashes())])
    [verdict] = composite.verify(["4"], ["4"])
    assert verdict.status == ERROR and "boom" in verdict.reason


def test_components_that_ask_for_contexts_get_them():
    composite = CompositeVerifier("mix", [("sees_prompt", 1.0, SeesPrompt()), ("math", 0.5, Fixed("math", [Verdict(1.0, OK)]))])
    [verdict] = composite.verify(["4"], ["4"], [Context(prompt="2+2=")])
    assert verdict.reward == pytest.approx(1.5)


@pytest.mark.parametrize("name, weights", [
    ("math", None),
    ("shaped", {"math": 1.0, "format": 0.2}),
    ("math=1,format=0.2", {"math": 1.0, "format": 0.2}),
    ("math = 1 , length=-0.5", {"math": 1.0, "length": -0.5}),
])
def test_composite_weights_by_name_or_inline(name, weights):
    assert composite_weights(name, {"shaped": {"math": 1.0, "format": 0.2}}) == weights


@pytest.mark.parametrize("name", ["math=1,format", "math=x", "math=1,math=2", "=1", "math=inf"])
def test_a_bad_inline_composite_is_one_clear_line(name):
    with pytest.raises(ConfigError, match="name=weight") as info:
        composite_weights(name, {})
    assert "\n" not in str(info.value)
