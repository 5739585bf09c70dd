"""Masked-diffusion model wrapper, presets, local loading and the sampler controller."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from simopt.errors import InputError
from training.diffusion_model import (
    DEFAULT_THRESHOLD_GRID,
    MaskedDiffusionLM,
    SamplerController,
    build_diffusion_model,
    diffusion_model_from_section,
    load_diffusion_model,
    save_diffusion_model,
)

VOCAB = 20  # real tokens; the preset appends the mask token as id 20


@pytest.fixture(scope="module")
def model() -> MaskedDiffusionLM:
    return build_diffusion_model(vocab_size=VOCAB, seed=0, hidden_size=32, num_layers=1).eval()


def test_preset_appends_mask_token_and_never_predicts_it(model):
    assert model.mask_token_id == VOCAB and model.vocab_size == VOCAB + 1
    ids = torch.randint(0, VOCAB + 1, (3, 9), generator=torch.Generator().manual_seed(1))
    logits = model(ids)
    assert logits.shape == (3, 9, VOCAB + 1)
    probs = torch.softmax(logits, -1)
    assert torch.all(probs[..., VOCAB] == 0)
    assert torch.isfinite(torch.log_softmax(logits, -1)).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 9))


def test_preset_is_bidirectional(model):
    """Changing the last token changes the logits at the first position (no causal mask)."""
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(2))
    other = ids.clone()
    other[0, -1] = (ids[0, -1] + 1) % VOCAB
    assert not torch.allclose(model(ids)[0, 0], model(other)[0, 0])


def test_preset_seeded_without_touching_global_rng():
    state = torch.random.get_rng_state()
    a = build_diffusion_model(vocab_size=VOCAB, seed=3, hidden_size=32, num_layers=1)
    assert torch.equal(state, torch.random.get_rng_state())
    b = build_diffusion_model(vocab_size=VOCAB, seed=3, hidden_size=32, num_layers=1)
    c = build_diffusion_model(vocab_size=VOCAB, seed=4, hidden_size=32, num_layers=1)
    ids = torch.arange(8).view(1, 8)
    assert torch.equal(a(ids), b(ids))
    assert not torch.equal(a(ids), c(ids))


def test_tokenizer_mask_token_is_used_as_is():
    m = build_diffusion_model(vocab_size=VOCAB, mask_token_id=3, hidden_size=32, num_layers=1)
    assert m.mask_token_id == 3 and m.vocab_size == VOCAB


def test_preset_errors():
    with pytest.raises(InputError, match="unknown masked-diffusion preset 'huge'"):
        build_diffusion_model("huge", vocab_size=VOCAB)
    with pytest.raises(InputError, match="multiple of num_heads"):
        build_diffusion_model(vocab_size=VOCAB, hidden_size=30, num_heads=4)
    with pytest.raises(InputError, match="outside the vocabulary"):
        MaskedDiffusionLM(torch.nn.Identity(), mask_token_id=5, vocab_size=5)


def test_pooled_prompt_state_ignores_padding(model):
    ids = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(5))
    pooled = model.pooled_prompt_state(ids, prompt_len=6)
    assert pooled.shape == (2, model.hidden_size)
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 3)], 1).long()
    torch.testing.assert_close(model.pooled_prompt_state(padded, 9, attention_mask=mask), pooled)
    # Only the prompt is read: the completion part of the sequence does not matter.
    longer = torch.cat([ids, torch.full((2, 4), model.mask_token_id)], 1)
    torch.testing.assert_close(model.pooled_prompt_state(longer, 6), pooled)
    with pytest.raises(InputError, match="prompt_len 0"):
        model.pooled_prompt_state(ids, 0)


def test_save_and_load_round_trip(model, tmp_path):
    save_diffusion_model(model, tmp_path / "ckpt")
    loaded = load_diffusion_model(tmp_path / "ckpt")
    assert loaded.mask_token_id == model.mask_token_id
    assert loaded.vocab_size == model.vocab_size
    ids = torch.arange(10).view(2, 5)
    torch.testing.assert_close(loaded(ids), model(ids))


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not a local directory"):
        load_diffusion_model(tmp_path / "missing")


# A LLaDA-like checkpoint: its own config and model classes, registered for AutoModel only.
_CONFIG_PY = """
from transformers import PretrainedConfig

class TinyConfig(PretrainedConfig):
    model_type = "tinyllada"

    def __init__(self, vocab_size=11, hidden_size=8, mask_token_id=10, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.mask_token_id = mask_token_id
        super().__init__(**kwargs)
"""

_MODELING_PY = """
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from .configuration_tiny import TinyConfig

class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, **kwargs):
        h = self.embed(input_ids)
        h = h + h.mean(1, keepdim=True)  # every position sees the whole sequence
        return MaskedLMOutput(logits=self.head(h),
                              hidden_states=(h,) if output_hidden_states else None)
"""


def test_remote_code_checkpoint_needs_explicit_flag(tmp_path):
    ckpt = tmp_path / "llada_like"
    ckpt.mkdir()
    (ckpt / "configuration_tiny.py").write_text(textwrap.dedent(_CONFIG_PY))
    (ckpt / "modeling_tiny.py").write_text(textwrap.dedent(_MODELING_PY))
    (ckpt / "config.json").write_text(json.dumps({
        "model_type": "tinyllada", "vocab_size": 11, "hidden_size": 8, "mask_token_id": 10,
        "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig",
                     "AutoModel": "modeling_tiny.TinyModel"},
    }))
    g = torch.Generator().manual_seed(0)
    save_file({"embed.weight": torch.randn(11, 8, generator=g),
               "head.weight": torch.randn(11, 8, generator=g),
               "head.bias": torch.randn(11, generator=g)}, str(ckpt / "model.safetensors"))
    with pytest.raises(InputError, match="trust_remote_code=True"):
        load_diffusion_model(ckpt)
    m = load_diffusion_model(ckpt, trust_remote_code=True)
    assert m.mask_token_id == 10 and m.vocab_size == 11 and m.hidden_size == 8
    ids = torch.tensor([[1, 2, 10, 10]])
    logits = m(ids)
    assert logits.shape == (1, 4, 11)
    assert torch.all(torch.softmax(logits, -1)[..., 10] == 0)
    assert m.pooled_prompt_state(ids, 2).shape == (1, 8)


def test_controller_starts_uniform_and_samples_the_grid():
    ctrl = SamplerController(hidden_size=16)
    pooled = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    k = len(DEFAULT_THRESHOLD_GRID)
    assert ctrl(pooled).shape == (5, k)
    idx, tau, logp = ctrl.sample(pooled, torch.Generator().manual_seed(1))
    assert idx.shape == tau.shape == logp.shape == (5,)
    torch.testing.assert_close(logp, torch.full((5,), -math.log(k)))
    torch.testing.assert_close(tau, torch.tensor(DEFAULT_THRESHOLD_GRID)[idx])
    torch.testing.assert_close(ctrl.log_prob(pooled, idx), logp)
    again = ctrl.sample(pooled, torch.Generator().manual_seed(1))[0]
    assert torch.equal(idx, again)


def test_controller_sampling_frequencies_match_its_distribution():
    ctrl = SamplerController(hidden_size=4, grid=[0.5, 0.9])
    with torch.no_grad():
        ctrl.net[-1].bias.copy_(torch.tensor([0.0, math.log(3.0)]))  # P(0.9) = 3/4
    pooled = torch.zeros(4000, 4)
    idx, _, logp = ctrl.sample(pooled, torch.Generator().manual_seed(2))
    freq = idx.float().mean().item()
    assert abs(freq - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 4000)
    torch.testing.assert_close(logp[idx == 1], torch.full_like(logp[idx == 1], math.log(0.75)))
    greedy = ctrl.sample(pooled[:3], greedy=True)[1]
    torch.testing.assert_close(greedy, torch.full((3,), 0.9))
    logp.sum().backward()  # differentiable in the controller's parameters
    assert ctrl.net[-1].bias.grad is not None


def test_controller_rejects_bad_grid():
    with pytest.raises(InputError, match="threshold grid"):
        SamplerController(4, grid=[0.5, 1.5])
    with pytest.raises(InputError, match="lr_scale"):
        SamplerController(4, lr_scale=0.0)


def _train_controller(lr_scale: float, lr: float, steps: int = 6):
    """A few AdamW steps of a controller on a fixed REINFORCE-style loss; returns the head's
    logits after every step and the gradient norm of every step (what clipping sees)."""
    torch.manual_seed(3)
    ctrl = SamplerController(8, grid=[0.1, 0.5, 0.9], width=16, lr_scale=lr_scale)
    gen = torch.Generator().manual_seed(4)
    pooled = torch.randn(32, 8, generator=gen)
    index = torch.randint(0, 3, (32,), generator=gen)
    adv = torch.randn(32, generator=gen)
    opt = torch.optim.AdamW(ctrl.parameters(), lr=lr, weight_decay=0.0)
    logits, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        (-(adv * ctrl.log_prob(pooled, index)).mean()).backward()
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(q.grad) for q in ctrl.parameters()]))))
        opt.step()
        logits.append(ctrl(pooled).detach())
    return logits, norms


def test_controller_lr_scale_is_adam_with_a_scaled_learning_rate():
    """lr_scale c under AdamW(lr) follows the plain head under AdamW(c·lr) step for step (same
    seeded init), with the plain head's gradient norms; lr_scale 1 keeps the state-dict keys."""
    scaled, scaled_norms = _train_controller(lr_scale=50.0, lr=1e-4)
    plain, plain_norms = _train_controller(lr_scale=1.0, lr=5e-3)
    slow, _ = _train_controller(lr_scale=1.0, lr=1e-4)
    for a, b in zip(scaled, plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert scaled_norms == pytest.approx(plain_norms, rel=1e-4)
    assert scaled[-1].abs().max() > 10 * slow[-1].abs().max()  # logits start at 0
    assert "net.3.weight" in SamplerController(8).state_dict()
    scaled_ctrl = SamplerController(8, lr_scale=10.0)
    k = len(DEFAULT_THRESHOLD_GRID)
    torch.testing.assert_close(scaled_ctrl(torch.ones(2, 8)), torch.zeros(2, k))  # uniform


def test_model_from_run_config_section_with_char_tokenizer(tmp_path):
    from training.config import ModelSection
    from training.tokenizer import char_tokenizer

    tok = char_tokenizer()
    cfg = ModelSection(name="tiny-mdm", hidden_size=32, num_layers=1, num_heads=4)
    m = diffusion_model_from_section(cfg, tok, seed=0)
    assert m.mask_token_id == len(tok) == 100 and m.vocab_size == 101
    ids = torch.tensor([tok("Sudoku 0123")["input_ids"]])
    assert m(ids).shape == (1, ids.shape[1], 101)
    save_diffusion_model(m, tmp_path / "m")
    again = diffusion_model_from_section(cfg.model_copy(update={"name": str(tmp_path / "m")}),
                                         tok, seed=1)
    torch.testing.assert_close(again(ids), m(ids))


def test_rope_preset_is_roformer_bidirectional_and_never_predicts_mask(tmp_path):
    rope = build_diffusion_model("tiny-mdm-rope", vocab_size=VOCAB, seed=0, hidden_size=32,
                                 num_layers=1).eval()
    assert type(rope.model).__name__ == "RoFormerForMaskedLM"
    assert rope.mask_token_id == VOCAB and rope.vocab_size == VOCAB + 1 and rope.hidden_size == 32
    ids = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(5))
    logits = rope(ids)
    assert torch.all(torch.softmax(logits, -1)[..., VOCAB] == 0)
    other = ids.clone()
    other[:, -1] = (ids[:, -1] + 1) % VOCAB
    assert not torch.allclose(rope(other)[:, 0], logits[:, 0])  # bidirectional
    save_diffusion_model(rope, tmp_path / "rope")
    torch.testing.assert_close(load_diffusion_model(tmp_path / "rope")(ids), logits)


def test_rope_preset_is_invariant_to_left_padding_and_bert_is_not():
    """Rotary attention sees only offsets: left padding (masked out) leaves the logits of the
    real tokens unchanged. Learned absolute positions (the BERT preset) shift with the padding;
    this is why the rotary preset learns offset copies (Sudoku clues) much faster."""
    ids = torch.randint(1, VOCAB, (2, 9), generator=torch.Generator().manual_seed(6))
    padded = torch.cat([torch.zeros(2, 3, dtype=torch.long), ids], 1)
    attn = torch.cat([torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 9, dtype=torch.long)], 1)
    rope = build_diffusion_model("tiny-mdm-rope", vocab_size=VOCAB, seed=1, hidden_size=32,
                                 num_layers=2).eval()
    torch.testing.assert_close(rope(padded, attention_mask=attn)[:, 3:], rope(ids),
                               atol=1e-5, rtol=1e-5)
    bert = build_diffusion_model("tiny-mdm", vocab_size=VOCAB, seed=1, hidden_size=32,
                                 num_layers=2).eval()
    assert (bert(padded, attention_mask=attn)[:, 3:] - bert(ids)).abs().max() > 1e-3
