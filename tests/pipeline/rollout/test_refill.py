"""Dynamic sampling with refill: groups without a signal are replaced by groups of more prompts,
up to a cap on the extra generation."""

import pytest

from pipeline.data import PromptRow
from pipeline.rollout import Rollouts, SamplingParams
from pipeline.rollout.refill import collect_with_refill, refill_size
from verifiers import OK, Verdict


class _Tokenizer:
    chat_template = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}


class _Engine:
    """A prompt starting with "mixed" gets completions 1, 0, 1, 0 ... (a signal); any other, all 1."""

    shares_weights = True

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n, sampling):
        self.calls.append(len(prompts))
        texts = [("1" if i % 2 == 0 or not "".join(map(chr, p)).startswith("mixed") else "0")
                 for p in prompts for i in range(n)]
        return Rollouts(prompt_ids=[list(p) for p in prompts for _ in range(n)], completion_ids=[[1]] * len(texts),
                        logprobs=[[0.0]] * len(texts), texts=texts, truncated=[False] * len(texts), group_size=n)


class _Scorer:
    def score(self, texts, references, names, contexts=None):
        return [Verdict(float(t == "1"), OK) for t in texts]


def _draw(first):
    def draw(refill, count):
        if refill == 0:
            return [PromptRow(p, "1", "fake") for p in first]
        return [PromptRow(f"mixed-{refill}-{i}", "1", "fake") for i in range(count)]
    return draw


@pytest.mark.parametrize("missing, found, sampled, room, size", [
    (3, 1, 4, 100, 15),       # rate 1/4: 3 / (1/4) * 1.25 = 15
    (10, 0, 128, 1000, 100),  # nothing yet: rate taken as 1/8 -> 10 * 8 * 1.25 = 100
    (1, 90, 100, 5, 2),       # rate .9: ceil(1 / .9 * 1.25) = ceil(1.39) = 2
    (3, 1, 4, 8, 8),          # capped by the room left
    (3, 1, 4, 0, 0),
])
def test_refill_size_by_hand(missing, found, sampled, room, size):
    assert refill_size(missing, found, sampled, room) == size


def test_refills_until_the_quota_of_groups_with_a_signal_is_full():
    engine = _Engine()
    first = ["easy-0", "easy-1", "mixed-0", "easy-2"]  # one group of four with a signal
    r = collect_with_refill(engine, _Scorer(), _Tokenizer(), _draw(first), quota=4, n=4,
                            sampling=SamplingParams(), max_extra=2.0)
    # refill: min(room 2 * 4 = 8, 3 / (1/4) * 1.25 = 15) = 8 prompts, all with a signal
    assert engine.calls == [4, 8] and r.prompts_sampled == 12 and r.refills == 1
    assert len(r.collected.verdicts) == 48 and len(r.collected.rows) == 12
    groups = r.trained.view(-1, 4).all(dim=1).tolist()
    assert groups == [False, False, True, False, True, True, True] + [False] * 5  # the first four with a signal
    assert r.groups_trained == 4 and r.groups_short == 0


def test_the_cap_stops_refilling_and_the_shortfall_is_reported():
    engine = _Engine()
    r = collect_with_refill(engine, _Scorer(), _Tokenizer(), _draw(["easy-0", "easy-1", "mixed-0", "easy-2"]),
                            quota=4, n=4, sampling=SamplingParams(), max_extra=0.5)
    assert engine.calls == [4, 2] and r.prompts_sampled == 6  # room for 0.5 * 4 = 2 extra prompts
    assert r.groups_trained == 3 and r.groups_short == 1


def test_a_full_first_batch_samples_nothing_more():
    engine = _Engine()
    r = collect_with_refill(engine, _Scorer(), _Tokenizer(), _draw(["mixed-a", "mixed-b"]), quota=2, n=2,
                            sampling=SamplingParams(), max_extra=2.0)
    assert engine.calls == [2] and r.refills == 0 and r.groups_trained == 2 and bool(r.trained.all())
    assert r.prompts_sampled == 2
