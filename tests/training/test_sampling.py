"""Masked-diffusion decoding: the three unmasking rules, NFE accounting, recorded log-probs.

Rules are checked against an independent replay: from ``unmask_step`` we rebuild the state the
sampler saw at every step, call the model on it, and re-derive which tokens the rule commits.
"""

from __future__ import annotations

import pytest
import torch

from simopt.errors import InputError
from training.diffusion_model import MaskedDiffusionLM, build_diffusion_model
from training.sampling import generate, low_confidence_schedule

VOCAB = 12
PROMPT, GEN, BLOCK = 5, 12, 4


@pytest.fixture(scope="module")
def model() -> MaskedDiffusionLM:
    return build_diffusion_model(vocab_size=VOCAB, seed=0, hidden_size=32, num_layers=1).eval()


class Sharpened(torch.nn.Module):
    """The tiny model with logits scaled up, so confidences spread over (0, 1)."""

    def __init__(self, base: MaskedDiffusionLM, scale: float) -> None:
        super().__init__()
        self.base, self.scale = base, scale
        self.mask_token_id = base.mask_token_id

    def forward(self, input_ids, attention_mask=None):
        return self.base(input_ids, attention_mask) * self.scale


@pytest.fixture(scope="module")
def prompts() -> torch.Tensor:
    return torch.randint(0, VOCAB, (4, PROMPT), generator=torch.Generator().manual_seed(0))


def states(gen, b: int, mask_id: int) -> list[torch.Tensor]:
    """The sequence sample ``b`` had before each of its steps, rebuilt from ``unmask_step``."""
    out = []
    completion = gen.completion[b]
    for s in range(int(gen.nfe[b])):
        partial = torch.where(gen.unmask_step[b] < s, completion, torch.full_like(completion,
                                                                                  mask_id))
        out.append(torch.cat([gen.tokens[b, :PROMPT], partial]))
    return out


def check_common(gen, prompts, mask_id):
    assert gen.tokens.shape == (prompts.shape[0], PROMPT + GEN)
    assert torch.equal(gen.tokens[:, :PROMPT], prompts)
    assert not (gen.completion == mask_id).any()
    assert (gen.unmask_step >= 0).all()
    torch.testing.assert_close(gen.nfe, gen.unmask_step.max(1).values + 1)
    assert gen.batch_nfe == int(gen.nfe.max())
    # Semi-autoregressive: every token of block k is committed after all tokens of block k-1.
    blocks = gen.unmask_step.view(-1, GEN // BLOCK, BLOCK)
    assert (blocks[:, 1:].min(-1).values > blocks[:, :-1].max(-1).values).all()
    # Each step commits at least one token: the steps used are exactly 0..nfe-1.
    for b in range(gen.tokens.shape[0]):
        assert set(gen.unmask_step[b].tolist()) == set(range(int(gen.nfe[b])))


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_threshold_at_least_one_decodes_one_token_per_step(model, prompts, tau):
    gen = generate(model, prompts, GEN, BLOCK, "threshold", threshold=tau)
    check_common(gen, prompts, model.mask_token_id)
    assert gen.nfe.tolist() == [GEN] * 4
    for b in range(4):
        assert sorted(gen.unmask_step[b].tolist()) == list(range(GEN))


def test_eb_gamma_zero_decodes_one_token_per_step(model, prompts):
    gen = generate(model, prompts, GEN, BLOCK, "eb", gamma=0.0)
    check_common(gen, prompts, model.mask_token_id)
    assert gen.nfe.tolist() == [GEN] * 4


def test_threshold_zero_decodes_each_block_in_one_step(model, prompts):
    gen = generate(model, prompts, GEN, BLOCK, "threshold", threshold=0.0)
    check_common(gen, prompts, model.mask_token_id)
    assert gen.nfe.tolist() == [GEN // BLOCK] * 4
    assert torch.equal(gen.unmask_step, (torch.arange(GEN) // BLOCK).expand(4, GEN))


@pytest.mark.parametrize("steps", [3, 6, 9, 12])
def test_low_confidence_uses_exactly_steps(model, prompts, steps):
    gen = generate(model, prompts, GEN, BLOCK, "low_confidence", steps=steps)
    check_common(gen, prompts, model.mask_token_id)
    assert gen.nfe.tolist() == [steps] * 4
    per_block = steps // (GEN // BLOCK)
    expected = low_confidence_schedule(BLOCK, per_block) * (GEN // BLOCK)
    counts = torch.stack([(gen.unmask_step == s).sum(1) for s in range(steps)], 1)
    assert counts.tolist() == [expected] * 4


def test_low_confidence_schedule_spreads_remainder():
    assert low_confidence_schedule(10, 4) == [3, 3, 2, 2]
    assert sum(low_confidence_schedule(7, 7)) == 7


def test_low_confidence_commits_the_most_confident(model, prompts):
    sharp = Sharpened(model, 8.0)
    gen = generate(sharp, prompts, GEN, BLOCK, "low_confidence", steps=6)
    for b in range(2):
        for s, state in enumerate(states(gen, b, model.mask_token_id)):
            probs = torch.softmax(sharp(state[None])[0, PROMPT:], -1)
            conf, _ = probs.max(-1)
            block = s // 2
            cand = (state[PROMPT:] == model.mask_token_id)
            cand &= (torch.arange(GEN) // BLOCK) == block
            chosen = gen.unmask_step[b] == s
            if (cand & ~chosen).any():
                assert conf[chosen].min() >= conf[cand & ~chosen].max()


def test_threshold_rule_replayed(model, prompts):
    sharp = Sharpened(model, 30.0)
    tau = 0.5
    gen = generate(sharp, prompts, GEN, BLOCK, "threshold", threshold=tau)
    multi = 0
    for b in range(4):
        block = 0
        for s, state in enumerate(states(gen, b, model.mask_token_id)):
            cand = (state[PROMPT:] == model.mask_token_id)
            while not (cand & ((torch.arange(GEN) // BLOCK) == block)).any():
                block += 1
            cand &= (torch.arange(GEN) // BLOCK) == block
            conf = torch.softmax(sharp(state[None])[0, PROMPT:], -1).max(-1).values
            conf = torch.where(cand, conf, torch.tensor(-1.0))
            expected = cand & (conf > tau)
            expected[conf.argmax()] = True
            assert torch.equal(gen.unmask_step[b] == s, expected)
            multi += int(expected.sum() > 1)
    assert multi > 0  # the replay exercised steps that commit several tokens


def test_eb_rule_replayed(model, prompts):
    gamma = 3.0
    sharp = Sharpened(model, 6.0)
    gen = generate(sharp, prompts, GEN, BLOCK, "eb", gamma=gamma)
    multi = 0
    for b in range(4):
        block = 0
        for s, state in enumerate(states(gen, b, model.mask_token_id)):
            in_block = (torch.arange(GEN) // BLOCK) == block
            if not ((state[PROMPT:] == model.mask_token_id) & in_block).any():
                block += 1
                in_block = (torch.arange(GEN) // BLOCK) == block
            cand = (state[PROMPT:] == model.mask_token_id) & in_block
            logp = torch.log_softmax(sharp(state[None])[0, PROMPT:], -1)
            entropy = -(logp.exp() * logp).sum(-1)
            positions = sorted(cand.nonzero().squeeze(-1).tolist(), key=lambda i: entropy[i])
            # Largest prefix with sum - max <= gamma, by brute force over prefix lengths.
            k = max(n for n in range(1, len(positions) + 1)
                    if sum(entropy[i] for i in positions[:n]) - max(
                        entropy[i] for i in positions[:n]) <= gamma)
            assert set((gen.unmask_step[b] == s).nonzero().squeeze(-1).tolist()) == set(
                positions[:k])
            multi += int(k > 1)
    assert multi > 0


def test_recorded_logprob_is_the_model_at_the_unmasking_state(model, prompts):
    gen = generate(model, prompts, GEN, BLOCK, "threshold", threshold=0.2, temperature=1.0,
                   generator=torch.Generator().manual_seed(3))
    for b in range(4):
        for s, state in enumerate(states(gen, b, model.mask_token_id)):
            logp = torch.log_softmax(model(state[None])[0, PROMPT:], -1)
            here = gen.unmask_step[b] == s
            expected = logp[here].gather(-1, gen.completion[b, here, None]).squeeze(-1)
            torch.testing.assert_close(gen.token_logprob[b, here], expected, atol=1e-5,
                                       rtol=1e-5)
    torch.testing.assert_close(gen.confidence, gen.token_logprob.exp())


def test_greedy_tokens_are_the_argmax(model, prompts):
    gen = generate(model, prompts, GEN, BLOCK, "low_confidence", steps=12)
    for s, state in enumerate(states(gen, 0, model.mask_token_id)):
        here = gen.unmask_step[0] == s
        argmax = model(state[None])[0, PROMPT:].argmax(-1)
        assert torch.equal(gen.completion[0, here], argmax[here])


def test_sampling_is_reproducible_and_random(model, prompts):
    def run(seed):
        return generate(model, prompts, GEN, BLOCK, "threshold", threshold=0.9, temperature=1.0,
                        generator=torch.Generator().manual_seed(seed)).tokens

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_per_sample_thresholds_and_batch_independence(model, prompts):
    sharp = Sharpened(model, 30.0)
    taus = torch.tensor([0.0, 0.5, 0.9, 1.0])
    gen = generate(sharp, prompts, GEN, BLOCK, "threshold", threshold=taus)
    assert gen.nfe[0] == GEN // BLOCK and gen.nfe[3] == GEN
    assert gen.batch_nfe == GEN
    for b in range(4):  # a sample decodes as it would alone, and costs its own NFE only
        alone = generate(sharp, prompts[b:b + 1], GEN, BLOCK, "threshold",
                         threshold=float(taus[b]))
        assert torch.equal(alone.tokens[0], gen.tokens[b])
        assert alone.nfe.item() == gen.nfe[b].item() == alone.batch_nfe


def test_per_sample_gamma(model, prompts):
    gen = generate(Sharpened(model, 6.0), prompts, GEN, BLOCK, "eb",
                   gamma=torch.tensor([0.0, 0.0, 100.0, 100.0]))
    assert gen.nfe[2] == gen.nfe[3] == GEN // BLOCK  # a huge budget takes each block at once


def test_left_padded_prompts_with_attention_mask(model):
    ids = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    gen = generate(model, ids, GEN, BLOCK, "low_confidence", steps=6, attention_mask=mask)
    assert not (gen.completion == model.mask_token_id).any()


def test_input_errors(model, prompts):
    with pytest.raises(InputError, match="multiple of block_length"):
        generate(model, prompts, 10, 4, "threshold", threshold=0.5)
    with pytest.raises(InputError, match="unknown sampler 'greedy'"):
        generate(model, prompts, GEN, BLOCK, "greedy")
    with pytest.raises(InputError, match="needs threshold"):
        generate(model, prompts, GEN, BLOCK, "threshold")
    with pytest.raises(InputError, match="low_confidence needs steps"):
        generate(model, prompts, GEN, BLOCK, "low_confidence", steps=4)
    with pytest.raises(InputError, match="gamma must be >= 0"):
        generate(model, prompts, GEN, BLOCK, "eb", gamma=-1.0)
    with pytest.raises(InputError, match=r"shape \(4,\)"):
        generate(model, prompts, GEN, BLOCK, "threshold", threshold=torch.ones(3))
    with pytest.raises(InputError, match="temperature"):
        generate(model, prompts, GEN, BLOCK, "threshold", threshold=0.5, temperature=-1.0)
