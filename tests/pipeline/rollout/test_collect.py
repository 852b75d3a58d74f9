"""collect: prompts -> G rollouts -> verdicts -> rewards and the mask of scored samples."""

import torch

from pipeline.config import HFRolloutConfig, ModelConfig, RunConfig
from pipeline.data import PromptRow
from pipeline.forward import vocabulary_fingerprint
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.rollout import SamplingParams, make_engine
from pipeline.rollout.collect import collect
from pipeline.scoring import Scorer
from verifiers import ERROR, OK, Verdict


class _Recording:
    """Reward 1 for even positions of the batch, an error for every third; records its calls."""

    name = "recording"
    wants_context = True

    def __init__(self):
        self.calls = []

    def verify(self, completions, references, contexts):
        self.calls.append((list(completions), list(references), list(contexts)))
        return [Verdict(0.0, ERROR, "boom") if i % 3 == 2 else Verdict(float(i % 2 == 0), OK)
                for i in range(len(completions))]


def _engine():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer, seed=0)
    return make_engine(HFRolloutConfig(), tokenizer, model=model), tokenizer


def test_collect_scores_each_sample_against_its_row_with_its_context():
    engine, tokenizer = _engine()
    scorer = Scorer.__new__(Scorer)
    verifier = _Recording()
    scorer.verifiers = {"recording": verifier}
    scorer._prepared = {"recording": {}}  # built without a run config: nothing prepared
    rows = [PromptRow("1+2=", "3", "recording", {"topic": "sums"}), PromptRow("4+4=", "8", "recording")]
    fingerprint = vocabulary_fingerprint(tokenizer)
    c = collect(engine, scorer, tokenizer, rows, 3, SamplingParams(max_new_tokens=4, seed=0), system="be brief",
                vocabulary=fingerprint)
    assert c.group_size == 3 and len(c.verdicts) == len(c.names) == 6
    completions, references, contexts = verifier.calls[0]
    assert completions == c.rollouts.texts
    assert references == ["3", "3", "3", "8", "8", "8"]
    assert [x.prompt for x in contexts] == ["1+2="] * 3 + ["4+4="] * 3
    assert [dict(x.row) for x in contexts] == [{"topic": "sums"}] * 3 + [{}] * 3  # the row's other columns
    assert all(x.system == "be brief" and x.vocabulary == fingerprint for x in contexts)
    assert [list(x.completion_ids) for x in contexts] == c.rollouts.completion_ids
    assert [list(x.prompt_ids) for x in contexts] == c.rollouts.prompt_ids
    # positions 2 and 5 errored: masked, never a reward of 0 that counts
    assert c.valid.tolist() == [True, True, False, True, True, False]
    assert c.rewards.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] and c.rewards.dtype == torch.float32


def test_collect_groups_by_verifier_and_times_its_phases():
    from pipeline.trainers.common import Stopwatch

    engine, tokenizer = _engine()
    cfg = RunConfig()
    scorer = Scorer(cfg, {"math"})
    rows = [PromptRow("1+2=", "3", "math")]
    watch = Stopwatch()
    c = collect(engine, scorer, tokenizer, rows, 2, SamplingParams(max_new_tokens=3, seed=1), watch=watch)
    assert c.names == ["math", "math"] and all(v.status == OK for v in c.verdicts)
    assert set(watch.pop()) == {"time_generate_s", "time_verify_s"}
