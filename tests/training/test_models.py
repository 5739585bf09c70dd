"""Model presets, local HF directories, LoRA, and the arithmetic task."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from simopt.errors import InputError
from training.config import ModelSection
from training.models import build_model, count_parameters, load_tokenizer
from training.tasks.arithmetic import check, generate, preference_examples, reward, solve


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_presets_build_offline_and_deterministically(name):
    cfg = ModelSection(name=name, hidden_size=32, num_layers=1, num_heads=2)
    tok = load_tokenizer(cfg)
    a, b = build_model(cfg, tok, seed=3), build_model(cfg, tok, seed=3)
    state = torch.get_rng_state()
    c = build_model(cfg, tok, seed=4)
    assert torch.equal(state, torch.get_rng_state())  # no global seeding leaks out
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    assert any(not torch.equal(va, vc) for va, vc in zip(a.parameters(), c.parameters(),
                                                          strict=True))
    ids = torch.tensor([[1, 20, 21, 22]])
    assert a(input_ids=ids).logits.shape == (1, 4, len(tok))
    trainable, total = count_parameters(a)
    assert trainable == total < 100_000


def test_local_model_directory_round_trip(tmp_path):
    cfg = ModelSection(name="tiny-gpt2", hidden_size=32, num_layers=1, num_heads=2)
    tok = load_tokenizer(cfg)
    model = build_model(cfg, tok, seed=0)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    local = ModelSection(name=str(tmp_path / "m"))
    loaded = build_model(local, load_tokenizer(local), seed=99)
    for (k, va), (_, vb) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                strict=True):
        assert torch.equal(va, vb), k
    assert load_tokenizer(local)("1+1=")["input_ids"] == tok("1+1=")["input_ids"]


def test_bad_model_and_tokenizer_names():
    with pytest.raises(InputError, match="not a preset .* nor a local model directory"):
        build_model(ModelSection(name="gpt-17"), load_tokenizer(ModelSection()), seed=0)
    with pytest.raises(InputError, match="neither 'char' nor a local directory"):
        load_tokenizer(ModelSection(tokenizer="/no/such/dir"))


def test_lora_needs_peft_or_adds_adapters():
    cfg = ModelSection(name="tiny-llama", hidden_size=32, num_layers=1, num_heads=2,
                       lora={"r": 2, "target_modules": ["q_proj", "v_proj"]})
    tok = load_tokenizer(cfg)
    if importlib.util.find_spec("peft") is None:
        with pytest.raises(InputError, match="model.lora needs the 'peft' package"):
            build_model(cfg, tok, seed=0)
    else:
        model = build_model(cfg, tok, seed=0)
        trainable, total = count_parameters(model)
        assert 0 < trainable < total


def test_arithmetic_generator_and_checker():
    problems = generate(50, seed=1, max_operand=12, operations="+-*")
    assert problems == generate(50, seed=1, max_operand=12, operations="+-*")
    for p in problems:
        assert solve(p.prompt) == int(p.answer) and check(p.prompt, p.answer)
    assert solve("12+7=") == 19 and solve("3-5=") == -2 and solve("4*6=") == 24
    assert check("12+7=", " 19 because") and not check("12+7=", "18") and not check("1+1=", "")
    assert reward("19", "12+7=") == 1.0 and reward("x", "12+7=") == 0.0
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        solve("hello")
    for ex in preference_examples(40, seed=2):
        assert check(ex.prompt, ex.chosen) and not check(ex.prompt, ex.rejected)
        assert 1 <= abs(int(ex.chosen) - int(ex.rejected)) <= 3
