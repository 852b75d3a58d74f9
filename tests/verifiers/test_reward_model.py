import pytest
import torch

from pipeline.config import RunConfig, VerifiersConfig, load_config
from pipeline.forward import sequence_scores, vocabulary_fingerprint
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model, scorer_from_causal_lm
from pipeline.scoring import Scorer
from pipeline.tokens import encode_demonstration, pack
from verifiers import ERROR, OK, Context, VerifierConfigError, available, get, run_verifier


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    """An (untrained) reward model directory in the format the reward_model stage writes."""
    cfg = load_config(None)
    source = resolve_model("tiny", cfg.model)
    tokenizer = load_tokenizer(source)
    scorer = scorer_from_causal_lm(load_causal_lm(source, cfg.model, tokenizer, seed=0), seed=0)
    torch.nn.init.normal_(scorer.score.weight, std=1.0)  # spread the scores out
    scorer.config.pad_token_id = tokenizer.pad_token_id
    path = tmp_path_factory.mktemp("rm") / "final"
    scorer.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reward_model_is_a_registered_builtin():
    assert "reward_model" in available()


def test_scores_a_batch_through_the_registry(rm_dir):
    verifier = get("reward_model", path=str(rm_dir), batch_size=2)
    prompts = ["12+7=", "3-5=", "40+2="]
    completions = ["19", "-2 maybe", "42"]
    verdicts = run_verifier(verifier, completions, prompts)
    assert [v.status for v in verdicts] == [OK] * 3

    # The same numbers as the model scoring the chat-formatted sequences directly.
    tokenizer = verifier.tokenizer
    encoded = [encode_demonstration(tokenizer, p, c, 512) for p, c in zip(prompts, completions)]
    with torch.no_grad():
        direct = sequence_scores(verifier.model, pack([e[0] for e in encoded], [e[1] for e in encoded], tokenizer.pad_token_id))
    assert [v.reward for v in verdicts] == pytest.approx(direct.tolist(), abs=1e-5)
    assert len({round(v.reward, 4) for v in verdicts}) == 3  # different completions, different scores


def test_references_may_be_mappings_and_bad_ones_become_error_verdicts(rm_dir):
    verifier = get("reward_model", path=str(rm_dir))
    as_text = run_verifier(verifier, ["19"], ["12+7="])
    as_mapping = run_verifier(verifier, ["19"], [{"prompt": "12+7="}])
    assert as_text[0].reward == pytest.approx(as_mapping[0].reward)
    broken = run_verifier(verifier, ["19", "20"], [12, "12+7="])
    assert [v.status for v in broken] == [ERROR, ERROR] and "prompt" in broken[0].reason


def test_scorer_builds_it_from_the_run_options_and_passes_the_contexts(rm_dir):
    cfg = RunConfig(verifiers=VerifiersConfig(options={"reward_model": {"path": str(rm_dir)}}))
    scorer = Scorer(cfg, {"reward_model"})
    # GRPO hands the gold answers as references; the contexts carry the prompts.
    contexts = [Context(prompt="12+7="), Context(prompt="12+7=")]
    verdicts = scorer.score(["19", "18"], [19, 19], ["reward_model", "reward_model"], contexts)
    direct = get("reward_model", path=str(rm_dir)).verify(["19", "18"], ["12+7=", "12+7="])
    assert all(v.status == OK for v in verdicts)
    assert [v.reward for v in verdicts] == pytest.approx([v.reward for v in direct])
    with pytest.raises(ValueError, match="pass the contexts"):
        scorer.score(["19"], [19], ["reward_model"])


def test_it_scores_the_sampled_ids_when_the_vocabulary_is_its_own(rm_dir):
    # With ids in its own vocabulary it scores the ids (here those of "42", while the text says
    # "19"); with ids of another vocabulary it re-tokenises the text.
    verifier = get("reward_model", path=str(rm_dir))
    tokenizer = verifier.tokenizer
    prompt_ids, other = encode_demonstration(tokenizer, "12+7=", "42", 512)
    ours = Context(prompt="12+7=", prompt_ids=tuple(prompt_ids), completion_ids=tuple(other),
                   vocabulary=vocabulary_fingerprint(tokenizer))
    by_ids = run_verifier(verifier, ["19"], [None], [ours])[0].reward
    as_text = {c: run_verifier(verifier, [c], ["12+7="])[0].reward for c in ("19", "42")}
    assert as_text["19"] != pytest.approx(as_text["42"], abs=1e-4)
    assert by_ids == pytest.approx(as_text["42"], abs=1e-5)
    foreign = Context(prompt="12+7=", prompt_ids=(1, 2), completion_ids=(3,), vocabulary="another-tokenizer")
    by_text = run_verifier(verifier, ["19"], [None], [foreign])[0].reward
    assert by_text == pytest.approx(run_verifier(verifier, ["19"], ["12+7="])[0].reward)


def test_scorer_defaults_to_the_runs_reward_model(rm_dir, tmp_path):
    import shutil

    cfg = RunConfig(output_dir=str(tmp_path / "run"))
    shutil.copytree(rm_dir, cfg.reward_model_path)
    verdicts = Scorer(cfg, {"reward_model"}).score(["19"], [19], ["reward_model"], [Context(prompt="12+7=")])
    assert verdicts[0].status == OK


def test_missing_or_wrong_path_is_a_config_error(tmp_path):
    with pytest.raises(VerifierConfigError, match="verifiers.options.reward_model.path"):
        get("reward_model")
    from errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="run the reward_model stage first"):
        get("reward_model", output_dir=str(tmp_path))
