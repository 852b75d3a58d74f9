"""Scorer: each completion by its own row's verifier, contexts to those that ask, errors masked."""

import importlib.metadata
import sys

import pytest

from errors import ConfigError
from pipeline.config import RunConfig, VerifiersConfig
from pipeline.scoring import Scorer
from verifiers import ERROR, OK, Context, UnknownVerifierError, Verdict


class Upper:
    """Reward 1 when the completion is the reference in capitals."""

    name = "upper"

    def __init__(self, strict: bool = True):
        self.strict = strict

    def verify(self, completions, references):
        return [Verdict(float(c == r.upper()), OK) for c, r in zip(completions, references)]


class Broken:
    name = "broken"

    def verify(self, completions, references):
        raise ConnectionError("no sandbox")


class PromptEcho:
    name = "prompt_echo"
    wants_context = True

    def verify(self, completions, references, contexts):
        return [Verdict(float(c == x.prompt), OK) for c, x in zip(completions, contexts)]


@pytest.fixture
def plugins(fake_entry_points):
    sys.modules.setdefault(__name__, sys.modules[Upper.__module__])
    fake_entry_points("rlvr.verifiers", *(
        importlib.metadata.EntryPoint(name=cls.name, value=f"{__name__}:{cls.__name__}", group="rlvr.verifiers")
        for cls in (Upper, Broken, PromptEcho)))


def test_a_mixed_batch_is_scored_each_by_its_own_verifier_in_order(plugins):
    scorer = Scorer(RunConfig(), {"upper", "math", "broken"})
    verdicts = scorer.score(["AB", "7", "x", "cd"], ["ab", "7", "y", "cd"], ["upper", "math", "broken", "upper"])
    assert [(v.status, v.reward) for v in verdicts] == [(OK, 1.0), (OK, 1.0), (ERROR, 0.0), (OK, 0.0)]
    assert "no sandbox" in verdicts[2].reason


def test_options_come_from_the_run_config_and_bad_ones_name_the_field(plugins):
    cfg = RunConfig(verifiers=VerifiersConfig(options={"upper": {"strict": False}}))
    assert Scorer(cfg, {"upper"}).verifiers["upper"].strict is False
    cfg = RunConfig(verifiers=VerifiersConfig(options={"upper": {"strictness": 1}}))
    with pytest.raises(ConfigError, match="verifiers.options.upper"):
        Scorer(cfg, {"upper"})


def test_an_unknown_verifier_fails_when_the_scorer_is_built(plugins):
    with pytest.raises(UnknownVerifierError, match="chess"):
        Scorer(RunConfig(), {"chess"})


def test_contexts_reach_only_the_verifiers_that_ask(plugins):
    scorer = Scorer(RunConfig(), {"upper", "prompt_echo"})
    contexts = [Context(prompt="hello"), Context(prompt="ab")]
    verdicts = scorer.score(["hello", "AB"], [None, "ab"], ["prompt_echo", "upper"], contexts)
    assert [v.reward for v in verdicts] == [1.0, 1.0]
    with pytest.raises(ValueError, match="'prompt_echo' scores completions in their context"):
        scorer.score(["hello"], [None], ["prompt_echo"])
