"""Masked-diffusion losses against independent computations and their known special cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from simopt.errors import InputError
from training.diffusion_model import MaskedDiffusionLM, build_diffusion_model
from training.losses.diffusion import (
    completion_logps,
    controller_loss,
    d1_logps,
    diffu_grpo_token_loss,
    group_advantages,
    importance_weights,
    llada_sft_loss,
    llada_sft_mask,
    mask_prompt,
    masked_token_mean,
    nfe_penalized_reward,
    sample_split_step,
    two_stage_logps,
)
from training.sampling import generate

VOCAB = 10  # real tokens; mask id 10 for the preset, V = 11


class ContextFree(torch.nn.Module):
    """Logits that ignore the input: the same vector ``bias`` at every position."""

    def __init__(self, vocab_size: int, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size) if bias is None else bias)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))


@pytest.fixture(scope="module")
def model() -> MaskedDiffusionLM:
    return build_diffusion_model(vocab_size=VOCAB, seed=0, hidden_size=32, num_layers=1).eval()


@pytest.fixture(scope="module")
def contextual() -> MaskedDiffusionLM:
    """A tiny model with large random weights, so its predictions depend strongly on context."""
    m = build_diffusion_model(vocab_size=VOCAB, seed=1, hidden_size=32, num_layers=1).eval()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# LLaDA SFT


def test_sft_mask_rate_and_prompt_untouched():
    batch, prompt_len, length, eps = 4000, 6, 30, 0.05
    ids = torch.randint(0, VOCAB, (batch, length), generator=gen(0))
    answer = torch.zeros(batch, length, dtype=torch.bool)
    answer[:, prompt_len:] = True
    noisy, masked, p = llada_sft_mask(ids, answer, VOCAB, eps=eps, generator=gen(1))
    assert not masked[:, :prompt_len].any()
    assert torch.equal(noisy[:, :prompt_len], ids[:, :prompt_len])
    assert torch.equal(noisy == VOCAB, masked)
    assert ((p >= eps) & (p <= 1)).all()
    n_ans = length - prompt_len
    # Given p, the masked count is Binomial(n_ans, p): Σ masked / Σ n_ans p has mean 1.
    ratio = masked.sum() / (n_ans * p.sum())
    sd = math.sqrt((n_ans * p * (1 - p)).sum()) / (n_ans * p.sum())
    assert abs(ratio.item() - 1) < 4 * sd
    # Overall masked fraction: E[p] = (1 - eps)/2 + eps.
    frac = masked[:, prompt_len:].float().mean().item()
    assert abs(frac - ((1 - eps) / 2 + eps)) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sft_loss_uniform_model_is_log_v_minus_1(dtype):
    """Constant logits: CE = log(V - 1) per masked token (the mask token is never predicted),
    so loss = log(V-1) · n_masked / (|y| p) exactly, with expectation log(V-1)."""
    v = VOCAB + 1
    uniform = MaskedDiffusionLM(ContextFree(v), mask_token_id=VOCAB, vocab_size=v).to(dtype)
    batch, length = 3000, 12
    ids = torch.randint(0, VOCAB, (batch, length), generator=gen(2))
    answer = torch.ones(batch, length, dtype=torch.bool)
    answer[:, :4] = False
    losses = llada_sft_loss(uniform, ids, answer, VOCAB, generator=gen(3))
    _, masked, p = llada_sft_mask(ids, answer, VOCAB, generator=gen(3))
    exact = math.log(v - 1) * masked.sum(1) / (8 * p)
    torch.testing.assert_close(losses, exact.float(), rtol=1e-5, atol=1e-6)
    se = losses.std().item() / math.sqrt(batch)
    assert abs(losses.mean().item() - math.log(v - 1)) < 4 * se
    # With the mask token left in the softmax the same model would score log V instead.
    raw = llada_sft_loss(lambda x: torch.zeros(*x.shape, v), ids, answer, VOCAB, generator=gen(3))
    torch.testing.assert_close(raw, math.log(v) * masked.sum(1) / (8 * p))


def test_sft_loss_matches_a_per_token_loop(model):
    ids = torch.randint(0, VOCAB, (3, 9), generator=gen(4))
    answer = torch.zeros(3, 9, dtype=torch.bool)
    answer[:, 3:] = True
    answer[2, 7:] = False  # a shorter answer (padding excluded)
    losses = llada_sft_loss(model, ids, answer, VOCAB, eps=1e-3, generator=gen(5))
    noisy, masked, p = llada_sft_mask(ids, answer, VOCAB, eps=1e-3, generator=gen(5))
    logits = model(noisy)
    for b in range(3):
        total = 0.0
        for i in range(9):
            if masked[b, i]:
                total += -torch.log_softmax(logits[b, i], -1)[ids[b, i]].item() / p[b].item()
        assert losses[b].item() == pytest.approx(total / answer[b].sum().item(), rel=1e-5)


def test_sft_loss_has_gradients(model):
    ids = torch.randint(0, VOCAB, (2, 8), generator=gen(6))
    answer = torch.ones(2, 8, dtype=torch.bool)
    llada_sft_loss(model, ids, answer, VOCAB, generator=gen(7)).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.zero_grad()


# --------------------------------------------------------------------------------------------
# d1 and two-stage likelihoods


def test_mask_prompt_rate():
    m = mask_prompt(torch.zeros(200, 50, dtype=torch.long), 0.15, gen(8))
    assert abs(m.float().mean().item() - 0.15) < 4 * math.sqrt(0.15 * 0.85 / 10_000)
    assert not mask_prompt(torch.zeros(3, 5, dtype=torch.long), 0.0, gen(8)).any()
    with pytest.raises(InputError, match="p_mask_prompt"):
        mask_prompt(torch.zeros(1, 1, dtype=torch.long), 1.5)


def test_d1_is_one_forward_pass_on_the_fully_masked_completion(model):
    prompt = torch.randint(0, VOCAB, (2, 5), generator=gen(9))
    completion = torch.randint(0, VOCAB, (2, 6), generator=gen(10))
    pmask = mask_prompt(prompt, 0.3, gen(11))
    calls = []

    def counting(x):
        calls.append(x.clone())
        return model(x)

    logps = d1_logps(counting, prompt, completion, VOCAB, prompt_mask=pmask)
    assert len(calls) == 1
    expected_input = torch.cat([torch.where(pmask, VOCAB, prompt),
                                torch.full_like(completion, VOCAB)], 1)
    assert torch.equal(calls[0], expected_input)
    manual = torch.log_softmax(model(expected_input)[:, 5:], -1)
    manual = manual.gather(-1, completion[..., None]).squeeze(-1)
    torch.testing.assert_close(logps, manual)
    # The same generator seed draws the same prompt mask.
    torch.testing.assert_close(d1_logps(model, prompt, completion, VOCAB, 0.3, gen(11)), logps)


def rollout(model, n=3, gen_len=8, block=4, seed=12):
    prompt = torch.randint(0, VOCAB, (n, 5), generator=gen(seed))
    g = generate(model, prompt, gen_len, block, "low_confidence", steps=gen_len, temperature=1.0,
                 generator=gen(seed + 1))
    return prompt, g


@pytest.mark.parametrize("tau", [0, 8, 9, 100])
def test_two_stage_reduces_to_d1_at_tau_zero_and_beyond_t(model, tau):
    prompt, g = rollout(model)  # T = 8 steps
    d1 = d1_logps(model, prompt, g.completion, VOCAB, 0.15, gen(20))
    two = two_stage_logps(model, prompt, g.completion, g.unmask_step, tau, VOCAB, 0.15, gen(20))
    assert torch.equal(two, d1)


def test_two_stage_scores_each_stage_from_its_state(model):
    prompt, g = rollout(model)
    tau = torch.tensor([2, 5, 3])
    pmask = mask_prompt(prompt, 0.15, gen(21))
    calls = []

    def counting(x):
        calls.append(x)
        return model(x)

    two = two_stage_logps(counting, prompt, g.completion, g.unmask_step, tau, VOCAB,
                          prompt_mask=pmask)
    assert len(calls) == 2
    d1 = d1_logps(model, prompt, g.completion, VOCAB, prompt_mask=pmask)
    stage_one = g.unmask_step < tau[:, None]
    assert stage_one.any() and (~stage_one).any()
    torch.testing.assert_close(two[stage_one], d1[stage_one])
    partial = torch.where(stage_one, g.completion, VOCAB)
    state = torch.cat([torch.where(pmask, VOCAB, prompt), partial], 1)
    manual = completion_logps(model(state), g.completion)
    torch.testing.assert_close(two[~stage_one], manual[~stage_one])


def test_two_stage_input_errors(model):
    prompt, g = rollout(model)
    with pytest.raises(InputError, match="split_step"):
        two_stage_logps(model, prompt, g.completion, g.unmask_step, -1, VOCAB)
    with pytest.raises(InputError, match="unmask_step has shape"):
        two_stage_logps(model, prompt, g.completion, g.unmask_step[:, :3], 1, VOCAB)


# --------------------------------------------------------------------------------------------
# Importance weights


def test_importance_weights_are_one_at_the_first_step_of_each_stage(contextual):
    prompt, g = rollout(contextual, n=4, gen_len=8, block=8, seed=30)
    tau = 3
    surrogate = two_stage_logps(contextual, prompt, g.completion, g.unmask_step, tau, VOCAB,
                                p_mask_prompt=0.0)
    w = importance_weights(surrogate, g.token_logprob, cap=10.0)
    first = (g.unmask_step == 0) | (g.unmask_step == tau)
    torch.testing.assert_close(w[first], torch.ones_like(w[first]), atol=1e-5, rtol=0)
    # Elsewhere the surrogate state differs from the sampler's, and so does the weight.
    assert (w[~first] - 1).abs().max() > 0.1


def test_importance_weights_are_one_for_a_context_free_model():
    v = VOCAB + 1
    cf = MaskedDiffusionLM(ContextFree(v, torch.randn(v, generator=gen(31))), VOCAB, v)
    prompt = torch.randint(0, VOCAB, (3, 5), generator=gen(32))
    g = generate(cf, prompt, 8, 4, "threshold", threshold=0.5, temperature=1.0,
                 generator=gen(33))
    for tau in (0, 1, 3):
        surrogate = two_stage_logps(cf, prompt, g.completion, g.unmask_step, tau, VOCAB, 0.15,
                                    gen(34))
        assert torch.equal(importance_weights(surrogate, g.token_logprob),
                           torch.ones_like(surrogate))


def test_importance_weights_truncated_and_detached():
    s = torch.tensor([[0.0, 2.0, -1.0]], requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 0.0]])
    w = importance_weights(s, t, cap=2.0)
    torch.testing.assert_close(w, torch.tensor([[1.0, 2.0, math.exp(-1.0)]]))
    assert not w.requires_grad
    with pytest.raises(InputError, match="cap"):
        importance_weights(s, t, cap=0.0)


# --------------------------------------------------------------------------------------------
# GRPO


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])
    torch.testing.assert_close(group_advantages(r, 4),
                               torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(group_advantages(torch.full((6,), 0.7), 3), torch.zeros(6))
    with pytest.raises(InputError, match="groups of 4"):
        group_advantages(torch.zeros(6), 4)


def test_nfe_penalized_reward():
    out = nfe_penalized_reward(torch.tensor([1.0, 0.5]), torch.tensor([16, 4]), 16, 0.2)
    torch.testing.assert_close(out, torch.tensor([0.8, 0.45]))


def policy_logps(dtype, weights=None):
    theta = torch.randn(4, 5, VOCAB, generator=gen(40), dtype=dtype, requires_grad=True)
    tokens = torch.randint(0, VOCAB, (4, 5), generator=gen(41))
    logps = torch.log_softmax(theta, -1).gather(-1, tokens[..., None]).squeeze(-1)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1, 3:] = False
    mask[3, 1:] = False
    return theta, logps, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_on_policy_grpo_gradient_is_the_policy_gradient(dtype):
    theta, logps, mask = policy_logps(dtype)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.3, 0.9], dtype=dtype), 2)
    per_token, metrics = diffu_grpo_token_loss(logps, logps.detach(), adv,
                                               ref_logps=logps.detach(), beta=0.04)
    loss = masked_token_mean(per_token, mask)
    torch.testing.assert_close(torch.exp(logps - logps.detach()), torch.ones_like(logps))
    (grad,) = torch.autograd.grad(loss, theta, retain_graph=True)
    n = mask.sum()
    pg = -(adv[:, None] * logps * mask).sum() / n
    (expected,) = torch.autograd.grad(pg, theta)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(loss, -(adv[:, None] * mask).sum() / n)
    assert metrics["kl"].abs().max() == 0 and metrics["clip_fraction"].sum() == 0


def test_importance_weights_scale_the_policy_gradient():
    theta, logps, mask = policy_logps(torch.float64)
    adv = torch.tensor([0.5, -0.5, 1.0, -1.0], dtype=torch.float64)
    w = torch.rand(4, 5, generator=gen(42), dtype=torch.float64) * 2
    per_token, _ = diffu_grpo_token_loss(logps, logps.detach(), adv, weights=w)
    (grad,) = torch.autograd.grad(masked_token_mean(per_token, mask), theta,
                                  retain_graph=True)
    (expected,) = torch.autograd.grad(-(w * adv[:, None] * logps * mask).sum() / mask.sum(),
                                      theta)
    torch.testing.assert_close(grad, expected)


def test_clipping_by_hand():
    logps = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = torch.log(torch.tensor([[0.5, 0.5, 4.0, 4.0]], dtype=torch.float64))  # ratio 2,2,.25,.25
    for adv, values, live in ((1.0, [-1.5, -1.5, -0.25, -0.25], [0, 0, 1, 1]),
                              (-1.0, [2.0, 2.0, 0.5, 0.5], [1, 1, 0, 0])):
        per_token, m = diffu_grpo_token_loss(logps, old, torch.tensor([adv]), clip_eps=0.5)
        torch.testing.assert_close(per_token.detach(), torch.tensor([values], dtype=torch.float64))
        (g,) = torch.autograd.grad(per_token.sum(), logps)
        assert ((g != 0).long().squeeze(0).tolist()) == live
        assert m["clip_fraction"].sum() == 4 - sum(live)


def test_k3_kl_penalty_value_and_gradient():
    logps = torch.tensor([[-1.0, -2.0, -0.5]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, -0.5]], dtype=torch.float64)
    per_token, m = diffu_grpo_token_loss(logps, logps.detach(), torch.zeros(1), ref_logps=ref,
                                         beta=0.1)
    d = ref - logps.detach()
    torch.testing.assert_close(m["kl"], torch.exp(d) - d - 1)
    torch.testing.assert_close(per_token.detach(), 0.1 * (torch.exp(d) - d - 1))
    (g,) = torch.autograd.grad(per_token.sum(), logps)
    torch.testing.assert_close(g, 0.1 * (1 - torch.exp(d)))


def test_masked_token_mean():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert masked_token_mean(v, torch.tensor([[1, 0], [1, 1]])).item() == pytest.approx(8 / 3)


def test_controller_loss_on_policy_is_reinforce():
    logits = torch.randn(3, 4, generator=gen(50), requires_grad=True)
    idx = torch.tensor([0, 3, 1])
    logp = torch.log_softmax(logits, -1).gather(-1, idx[:, None]).squeeze(-1)
    adv = torch.tensor([0.4, -0.2, -0.2])
    (g,) = torch.autograd.grad(controller_loss(logp, logp.detach(), adv).sum(), logits,
                               retain_graph=True)
    (expected,) = torch.autograd.grad(-(adv * logp).sum(), logits)
    torch.testing.assert_close(g, expected)


def test_sample_split_step_range():
    nfe = torch.tensor([1, 3, 8]).repeat(500)
    tau = sample_split_step(nfe, gen(60))
    assert ((tau >= 0) & (tau < nfe)).all()
    assert set(tau[nfe == 3].tolist()) == {0, 1, 2}
    assert (tau[nfe == 1] == 0).all()
