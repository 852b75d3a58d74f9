"""Scorer: each completion by its own row's verifier, contexts to those that ask, errors masked."""

import importlib.metadata
import json
import sys

import pytest

from errors import ConfigError, DataError
from pipeline.config import RunConfig, VerifiersConfig, load_config
from pipeline.data import build_task_data
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


class Counted:
    """Reads each reference once into a tuple; `verify` accepts only what it prepared."""

    name = "counted"
    prepared: list = []

    def prepare_reference(self, reference):
        if reference == "?":
            raise ValueError("no answer in '?'")
        Counted.prepared.append(reference)
        return ("read", reference)

    def verify(self, completions, references):
        assert all(isinstance(r, tuple) and r[0] == "read" for r in references), references
        return [Verdict(float(c == r[1]), OK) for c, r in zip(completions, references)]


@pytest.fixture
def plugins(fake_entry_points):
    sys.modules.setdefault(__name__, sys.modules[Upper.__module__])
    Counted.prepared = []
    fake_entry_points("rlvr.verifiers", *(
        importlib.metadata.EntryPoint(name=cls.name, value=f"{__name__}:{cls.__name__}", group="rlvr.verifiers")
        for cls in (Upper, Broken, PromptEcho, Counted)))


def _dataset(tmp_path, rows, *overrides):
    path = tmp_path / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(None, ["task.kind=dataset", f"task.rl.path={path}", "task.eval_size=1",
                             "task.rl.verifier_field=verifier", *overrides])
    return path, cfg, build_task_data(cfg)


def test_a_mixed_batch_is_scored_each_by_its_own_verifier_in_order(plugins):
    scorer = Scorer(RunConfig(), {"upper", "math", "broken"})
    verdicts = scorer.score(["AB", "7", "x", "cd"], ["ab", "7", "y", "cd"], ["upper", "math", "broken", "upper"],
                            [Context(prompt=p) for p in ("ab?", "3+4=", "y?", "cd?")])
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


def test_references_are_prepared_once_per_distinct_row_and_scoring_uses_them(plugins, tmp_path):
    rows = [{"prompt": "a", "answer": "x", "verifier": "counted"}, {"prompt": "b", "answer": "y", "verifier": "counted"},
            {"prompt": "c", "answer": "x", "verifier": "counted"}, {"prompt": "d", "answer": "q", "verifier": "upper"}]
    _, cfg, data = _dataset(tmp_path, rows)
    scorer = Scorer.for_task(cfg, data)
    assert sorted(Counted.prepared) == ["x", "y"]  # "x" twice in the data, read once; "upper" cannot prepare
    verdicts = scorer.score(["x", "z", "y", "Q"], ["x", "x", "y", "q"], ["counted", "counted", "counted", "upper"])
    assert [v.reward for v in verdicts] == [1.0, 0.0, 1.0, 1.0]  # Counted.verify asserts it got prepared ones
    assert sorted(Counted.prepared) == ["x", "y"]


def test_an_unreadable_gold_fails_at_load_naming_the_file_and_row(plugins, tmp_path):
    rows = [{"prompt": f"p{i}", "answer": str(i), "verifier": "counted"} for i in range(4)]
    rows[2]["answer"] = "?"
    path, cfg, data = _dataset(tmp_path, rows)
    with pytest.raises(DataError) as err:
        Scorer.for_task(cfg, data)
    assert f"{path}: row 3: no answer in '?'" in str(err.value)
    assert "verifier 'counted'" in str(err.value)


def test_an_unreadable_math_gold_fails_at_load_and_readable_ones_are_not_read_again(tmp_path, monkeypatch):
    import verifiers.math.verifier as math_verifier

    rows = [{"prompt": f"p{i}", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}", "verifier": "math"} for i in range(5)]
    _, cfg, data = _dataset(tmp_path, rows)
    scorer = Scorer.for_task(cfg, data)
    reads = []
    monkeypatch.setattr(math_verifier, "prepare_reference", lambda r: reads.append(r) or pytest.fail("re-read"))
    golds = [r.answer for r in data.fixed_prompt_rows()]
    verdicts = scorer.score([f"The answer is {g.split('#### ')[1]}." for g in golds], golds, ["math"] * len(golds),
                            [Context(prompt=r.prompt) for r in data.fixed_prompt_rows()])
    assert [v.reward for v in verdicts] == [1.0] * 5 and reads == []
    monkeypatch.undo()

    rows[3]["answer"] = "She sells them all and keeps the rest."  # a worked solution with no final answer
    path, cfg, data = _dataset(tmp_path, rows)
    with pytest.raises(DataError, match=rf"{path}: row 4: reference .* has no readable answer"):
        Scorer.for_task(cfg, data)


class NeedsRunPath:
    """Takes `path` from the run unless configured: the general form of the reward model's default."""

    name = "needs_run_path"

    @classmethod
    def run_defaults(cls, run, options):
        return {} if "path" in options else {"path": run["reward_model_path"]}

    def __init__(self, path):
        self.path = path

    def verify(self, completions, references):
        return [Verdict(1.0, OK) for _ in completions]


def test_a_verifier_declares_options_it_takes_from_the_run(plugins, monkeypatch, tmp_path):
    entries = [importlib.metadata.EntryPoint(name="needs_run_path", value=f"{__name__}:NeedsRunPath",
                                             group="rlvr.verifiers")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: entries if group == "rlvr.verifiers" else [])
    cfg = RunConfig(output_dir=str(tmp_path))
    assert Scorer(cfg, {"needs_run_path"}).verifiers["needs_run_path"].path == str(tmp_path / "reward_model" / "final")
    cfg = RunConfig(output_dir=str(tmp_path), verifiers=VerifiersConfig(options={"needs_run_path": {"path": "/x"}}))
    assert Scorer(cfg, {"needs_run_path"}).verifiers["needs_run_path"].path == "/x"  # the config wins


def test_the_reward_model_default_is_a_run_default_of_its_verifier(tmp_path):
    from verifiers.reward_model import RewardModelVerifier

    facts = {"reward_model_path": str(tmp_path / "rm")}
    assert RewardModelVerifier.run_defaults(facts, {}) == {"path": str(tmp_path / "rm")}
    assert RewardModelVerifier.run_defaults(facts, {"output_dir": "elsewhere"}) == {}


def test_a_composite_builds_each_component_with_its_own_options_and_logs_them(plugins):
    cfg = RunConfig(verifiers=VerifiersConfig(composites={"shaped": {"upper": 1.0, "format": 0.5}},
                                              options={"upper": {"strict": False}, "format": {"pattern": "^[A-Z]+$"}}))
    scorer = Scorer(cfg, {"shaped", "upper=2,math=1"})
    shaped = scorer.verifiers["shaped"]
    assert shaped.weights == {"upper": 1.0, "format": 0.5} and shaped.parts[0][2].strict is False
    assert scorer.components() == {"shaped": ["upper", "format"], "upper=2,math=1": ["upper", "math"]}
    verdicts = scorer.score(["AB", "ab", "7"], ["ab", "ab", "7"], ["shaped", "shaped", "upper=2,math=1"],
                            [Context(), Context(), Context()])
    # "AB": upper 1 + .5 * format 1 = 1.5 ; "ab": 0 + .5 * 0 = 0 ; "7": 2 * upper("7" == "7") + math 1 = 3
    assert [v.reward for v in verdicts] == [1.5, 0.0, 3.0]
    assert dict((n, v.reward) for n, v in verdicts[0].parts) == {"upper": 1.0, "format": 1.0}


def test_an_old_two_argument_plugin_works_unchanged_in_a_composite(plugins):
    # `Upper` knows nothing of contexts or composites: it is called as verify(completions, references).
    cfg = RunConfig(verifiers=VerifiersConfig(composites={"mix": {"upper": 1.0, "prompt_echo": 1.0}}))
    [verdict] = Scorer(cfg, {"mix"}).score(["HI"], ["hi"], ["mix"], [Context(prompt="HI")])
    assert verdict.reward == 2.0


@pytest.mark.parametrize("composites, name, message", [
    ({"shaped": {"math": 1.0, "fromat": 0.2}}, "shaped", r"verifiers.composites.shaped: Unknown verifier 'fromat'"),
    ({}, "math=1,fromat=0.2", r"composite verifier 'math=1,fromat=0.2': Unknown verifier 'fromat'"),
])
def test_an_unknown_verifier_in_a_composite_is_one_line_naming_the_composite(composites, name, message):
    cfg = RunConfig(verifiers=VerifiersConfig(composites=composites))
    with pytest.raises(UnknownVerifierError, match=message) as info:
        Scorer(cfg, {name})
    assert "\n" not in str(info.value)


def test_a_composite_of_composites_is_refused():
    cfg = RunConfig(verifiers=VerifiersConfig(composites={"a": {"math": 1.0}, "b": {"a": 1.0}}))
    with pytest.raises(ConfigError, match="component 'a' is itself a composite"):
        Scorer(cfg, {"b"})
