"""OPD / OPD+ against exact enumeration of a tiny autoregressive policy, and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from simopt.errors import InputError
from training.losses.opd import (
    F_DIVERGENCES,
    GeneralizedJSD,
    JensenShannon,
    get_divergence,
    gkd_token_divergence,
    gkd_token_loss,
    opd_advantages,
    opd_policy_loss,
    sampled_divergence,
)

ALL_DIVERGENCES = list(F_DIVERGENCES)
NO_CLIP = None  # clip_log_ratio=None: the exact estimator

# ------------------------------------------------------------------ the tiny policy
# Vocabulary 3, completions of length 3 after a fixed prompt: 27 sequences. The student's
# parameters are a table of logits, one row per prefix (1 + 3 + 9 = 13 rows); the teacher is
# another fixed table. Everything below is exact: sums over all 27 sequences.

VOCAB, LENGTH = 3, 3
SEQUENCES = torch.tensor(list(itertools.product(range(VOCAB), repeat=LENGTH)))  # (27, 3)


def _prefix_index(seq: torch.Tensor) -> torch.Tensor:
    """(N, T) row of the logits table used at each position (the prefix before it)."""
    rows = torch.zeros_like(seq)
    offset, code = 0, torch.zeros(seq.shape[0], dtype=torch.long)
    for t in range(seq.shape[1]):
        rows[:, t] = offset + code
        offset += VOCAB**t
        code = code * VOCAB + seq[:, t]
    return rows


ROWS = _prefix_index(SEQUENCES)
N_PREFIXES = sum(VOCAB**t for t in range(LENGTH))


def _tables(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    student = 0.8 * torch.randn(N_PREFIXES, VOCAB, generator=gen, dtype=torch.float64)
    teacher = 1.5 * torch.randn(N_PREFIXES, VOCAB, generator=gen, dtype=torch.float64)
    return student.requires_grad_(), teacher


def _token_logps(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position logits (27, T, V) and sampled-token log-probs (27, T)."""
    logits = table[ROWS]
    logp = torch.log_softmax(logits, -1).gather(-1, SEQUENCES.unsqueeze(-1)).squeeze(-1)
    return logits, logp


def _exact_objective_gradient(student, teacher, divergence) -> torch.Tensor:
    """∇ of L(θ) = E_{y~π_θ}[Σ_t f(u_t)], by summing over every sequence."""
    div = get_divergence(divergence)
    _, logp = _token_logps(student)
    _, logq = _token_logps(teacher)
    prob = logp.sum(-1).exp()
    objective = (prob * div.f(logq - logp).sum(-1)).sum()
    (grad,) = torch.autograd.grad(objective, student)
    return grad


def _per_sequence_surrogate_losses(student, teacher, divergence, estimator, gamma):
    """(27,) opd_policy_loss of each sequence alone (ratio = 1, n = 1) and (27,) P(y)."""
    _, logp = _token_logps(student)
    _, logq = _token_logps(teacher)
    mask = torch.ones_like(logp)
    adv = opd_advantages(
        logp, logq, mask, divergence, estimator=estimator, gamma=gamma, clip_log_ratio=NO_CLIP
    )
    losses = torch.stack(
        [
            opd_policy_loss(
                logp[i : i + 1],
                logp[i : i + 1].detach(),
                adv[i : i + 1],
                mask[i : i + 1],
                normalizer=1.0,
            )[0]
            for i in range(len(SEQUENCES))
        ]
    )
    return losses, logp.sum(-1).exp().detach()


def _per_sequence_surrogate_grads(student, teacher, divergence, estimator, gamma):
    """(27, P) gradient of each sequence's surrogate loss, and (27,) P(y)."""
    losses, probs = _per_sequence_surrogate_losses(student, teacher, divergence, estimator, gamma)
    grads = [torch.autograd.grad(loss, student, retain_graph=True)[0].flatten() for loss in losses]
    return torch.stack(grads), probs


def _expected_surrogate_gradient(student, teacher, divergence, estimator, gamma):
    """E_{y~π}[∇ surrogate(y)], exactly: one backward through Σ_y P(y) surrogate(y)."""
    losses, probs = _per_sequence_surrogate_losses(student, teacher, divergence, estimator, gamma)
    (grad,) = torch.autograd.grad((probs * losses).sum(), student)
    return grad


def _gkd_fixed_context_gradient(student, teacher, divergence) -> torch.Tensor:
    """∇_θ' E_{y~π_θ}[Σ_t D_f(q ‖ π_θ')(c_t)] at θ' = θ: contexts weighted, not differentiated."""
    logits, logp = _token_logps(student)
    teacher_logits, _ = _token_logps(teacher)
    prob = logp.sum(-1).exp().detach()
    per_token = gkd_token_divergence(logits, teacher_logits, divergence)
    (grad,) = torch.autograd.grad((prob * per_token.sum(-1)).sum(), student)
    return grad


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


# ------------------------------------------------------------------ exactness by enumeration


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_opd_plus_full_return_is_the_exact_gradient(divergence):
    student, teacher = _tables(seed=11)
    exact = _exact_objective_gradient(student, teacher, divergence)
    estimated = _expected_surrogate_gradient(student, teacher, divergence, "opd+", gamma=1.0)
    assert torch.allclose(estimated, exact, rtol=1e-9, atol=1e-11), divergence


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_opd_plus_gamma_zero_is_the_gkd_gradient_with_fixed_contexts(divergence):
    student, teacher = _tables(seed=12)
    gkd = _gkd_fixed_context_gradient(student, teacher, divergence)
    estimated = _expected_surrogate_gradient(student, teacher, divergence, "opd+", gamma=0.0)
    assert torch.allclose(estimated, gkd, rtol=1e-9, atol=1e-11), divergence
    # ... and the objective computed either way is the same number: E[f(u_t) | c_t] = D_f(c_t)
    div = get_divergence(divergence)
    logits, logp = _token_logps(student)
    teacher_logits, logq = _token_logps(teacher)
    prob = logp.sum(-1).exp()
    sampled = (prob * div.f(logq - logp).sum(-1)).sum()
    full = (prob * gkd_token_divergence(logits, teacher_logits, div).sum(-1)).sum()
    assert sampled.item() == pytest.approx(full.item(), rel=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_stopgrad_is_unbiased_only_for_reverse_kl_k1(gamma):
    student, teacher = _tables(seed=13)
    for divergence in ALL_DIVERGENCES:
        target = _expected_surrogate_gradient(student, teacher, divergence, "opd+", gamma)
        stopgrad = _expected_surrogate_gradient(student, teacher, divergence, "stopgrad", gamma)
        error = _relative_error(stopgrad, target)
        if divergence == "reverse_kl":
            assert error < 1e-9
        else:
            assert error > 0.05, (divergence, error)


@pytest.mark.parametrize("divergence", ["forward_kl", "js"])
def test_monte_carlo_opd_plus_converges_and_stopgrad_does_not(divergence):
    student, teacher = _tables(seed=14)
    exact = _exact_objective_gradient(student, teacher, divergence).flatten()
    errors = {}
    for estimator in ["opd+", "stopgrad"]:
        grads, probs = _per_sequence_surrogate_grads(student, teacher, divergence, estimator, 1.0)
        for n_samples in [200, 20_000]:
            trials = []
            for seed in range(5):
                rng = np.random.default_rng(seed)
                draws = rng.choice(len(probs), size=n_samples, p=probs.numpy() / probs.sum().item())
                counts = torch.bincount(torch.from_numpy(draws), minlength=len(probs))
                estimate = (counts.double().unsqueeze(-1) * grads).sum(0) / n_samples
                trials.append(_relative_error(estimate, exact))
            errors[estimator, n_samples] = float(np.mean(trials))
    assert errors["opd+", 20_000] < 0.1
    assert errors["opd+", 20_000] < 0.3 * errors["opd+", 200]  # shrinks like 1/sqrt(n)
    assert errors["stopgrad", 20_000] > 3 * errors["opd+", 20_000]
    assert errors["stopgrad", 20_000] > 0.2  # bias, not noise: more samples do not help


# ------------------------------------------------------------------ the divergences


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_w_equals_minus_f_plus_u_fprime_by_autograd(divergence):
    div = get_divergence(divergence)
    u = torch.cat([torch.logspace(-3, 3, 61, dtype=torch.float64)]).requires_grad_()
    u = u[(u - 1).abs() > 1e-6].detach().requires_grad_()  # tv has a kink at u = 1
    f = div.f(torch.log(u))
    (fprime,) = torch.autograd.grad(f.sum(), u)
    expected = -f.detach() + u.detach() * fprime
    assert torch.allclose(div.w(torch.log(u.detach())), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_f_is_convex_and_vanishes_at_one(divergence):
    div = get_divergence(divergence)
    assert div.f(torch.zeros(1, dtype=torch.float64)).abs().item() < 1e-15
    u = torch.linspace(0.05, 8.0, 400, dtype=torch.float64)
    f = div.f(torch.log(u))
    second_difference = f[2:] - 2 * f[1:-1] + f[:-2]
    assert (second_difference >= -1e-12).all()


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_perspective_is_p_times_f_of_ratio(divergence):
    div = get_divergence(divergence)
    gen = torch.Generator().manual_seed(3)
    log_p = torch.log_softmax(2 * torch.randn(50, 6, generator=gen, dtype=torch.float64), -1)
    log_q = torch.log_softmax(2 * torch.randn(50, 6, generator=gen, dtype=torch.float64), -1)
    expected = torch.exp(log_p) * div.f(log_q - log_p)
    assert torch.allclose(div.perspective(log_p, log_q), expected, rtol=1e-10, atol=1e-13)


def test_jsd_at_one_half_is_js_and_its_limits_are_the_kls():
    log_u = torch.linspace(-8, 8, 101, dtype=torch.float64)
    js, jsd = JensenShannon(), GeneralizedJSD(beta=0.5)
    assert torch.allclose(js.f(log_u), jsd.f(log_u), rtol=1e-12, atol=1e-14)
    assert torch.allclose(js.w(log_u), jsd.w(log_u), rtol=1e-12, atol=1e-14)
    gen = torch.Generator().manual_seed(4)
    student = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    forward = gkd_token_divergence(student, teacher, "forward_kl")
    reverse = gkd_token_divergence(student, teacher, "reverse_kl")
    small = gkd_token_divergence(student, teacher, "jsd", beta=1e-5) / 1e-5
    large = gkd_token_divergence(student, teacher, "jsd", beta=1 - 1e-5) / 1e-5
    assert torch.allclose(small, forward, rtol=1e-3)
    assert torch.allclose(large, reverse, rtol=1e-3)


def test_divergence_registry_and_parameters():
    assert set(F_DIVERGENCES) == {
        "reverse_kl", "reverse_kl_k3", "forward_kl", "js", "jsd", "tv", "hellinger", "pearson",
        "neyman", "alpha",
    }  # fmt: skip
    assert get_divergence("alpha", alpha=2.0).alpha == 2.0
    assert get_divergence("jsd").beta == 0.5
    with pytest.raises(InputError, match="unknown divergence 'kl'"):
        get_divergence("kl")
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['beta'\]"):
        get_divergence("forward_kl", beta=0.1)
    with pytest.raises(InputError, match="jsd beta must be in"):
        get_divergence("jsd", beta=1.0)
    with pytest.raises(InputError, match="alpha must be finite and not 0 or 1"):
        get_divergence("alpha", alpha=1.0)


def test_alpha_divergence_at_one_half_is_twice_hellinger():
    log_u = torch.linspace(-5, 5, 41, dtype=torch.float64)
    alpha, hellinger = get_divergence("alpha", alpha=0.5), get_divergence("hellinger")
    assert torch.allclose(alpha.f(log_u), 2 * hellinger.f(log_u), rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ advantages: mask, clip


def test_advantages_formulas_on_a_hand_example():
    student = torch.tensor([[-1.0, -2.0, -0.5, -3.0]], dtype=torch.float64)
    teacher = torch.tensor([[-0.5, -2.5, -0.5, -1.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]])
    log_u = (teacher - student)[0, :3]
    div = get_divergence("forward_kl")
    f, w = div.f(log_u), div.w(log_u)
    gamma = 0.9
    future = [gamma * f[1] + gamma**2 * f[2], gamma * f[2], 0.0]
    plus = opd_advantages(student, teacher, mask, "forward_kl", gamma=gamma, clip_log_ratio=None)
    stop = opd_advantages(
        student, teacher, mask, "forward_kl", estimator="stopgrad", gamma=gamma, clip_log_ratio=None
    )
    for t in range(3):
        assert plus[0, t].item() == pytest.approx((w[t] - future[t]).item(), rel=1e-12)
        assert stop[0, t].item() == pytest.approx((-f[t] - future[t]).item(), rel=1e-12)
    assert plus[0, 3].item() == 0.0 and stop[0, 3].item() == 0.0


@pytest.mark.parametrize("gamma", [0.0, 0.7, 1.0])
def test_padding_never_leaks_into_advantages(gamma):
    gen = torch.Generator().manual_seed(5)
    student = -torch.rand(1, 4, generator=gen, dtype=torch.float64) * 3
    teacher = -torch.rand(1, 4, generator=gen, dtype=torch.float64) * 3
    junk = torch.tensor([[-float("inf"), 123.0]], dtype=torch.float64)
    plain = opd_advantages(student, teacher, torch.ones(1, 4), "js", gamma=gamma)
    right = opd_advantages(
        torch.cat([student, junk], 1), torch.cat([teacher, -junk], 1),
        torch.tensor([[1, 1, 1, 1, 0, 0]]), "js", gamma=gamma,
    )  # fmt: skip
    left = opd_advantages(
        torch.cat([junk, student], 1), torch.cat([junk.flip(1), teacher], 1),
        torch.tensor([[0, 0, 1, 1, 1, 1]]), "js", gamma=gamma,
    )  # fmt: skip
    assert torch.equal(right[:, :4], plain) and torch.equal(left[:, 2:], plain)
    assert torch.count_nonzero(right[:, 4:]) == 0 and torch.count_nonzero(left[:, :2]) == 0


def test_log_ratio_clipping():
    student = torch.tensor([[-12.0, -0.1, -1.0]], dtype=torch.float64)
    teacher = torch.tensor([[-0.1, -12.0, -1.2]], dtype=torch.float64)
    mask = torch.ones(1, 3)
    div = get_divergence("pearson")
    clipped = opd_advantages(student, teacher, mask, div, clip_log_ratio=6.0)
    raw = opd_advantages(student, teacher, mask, div, clip_log_ratio=None)
    log_u = torch.tensor([6.0, -6.0, -0.2], dtype=torch.float64)
    assert torch.allclose(clipped[0], div.w(log_u))
    assert torch.allclose(raw[0], div.w((teacher - student)[0]))
    assert not torch.allclose(raw, clipped)


def test_advantages_carry_no_gradient_and_validate_inputs():
    student = torch.zeros(2, 3, requires_grad=True)
    adv = opd_advantages(student, torch.zeros(2, 3), torch.ones(2, 3), "reverse_kl")
    assert not adv.requires_grad
    with pytest.raises(InputError, match="unknown estimator"):
        opd_advantages(student, torch.zeros(2, 3), torch.ones(2, 3), "js", estimator="ppo")
    with pytest.raises(InputError, match="gamma must be in"):
        opd_advantages(student, torch.zeros(2, 3), torch.ones(2, 3), "js", gamma=1.5)
    with pytest.raises(InputError, match="must have one"):
        opd_advantages(student, torch.zeros(2, 4), torch.ones(2, 3), "js")


def test_sampled_divergence_is_masked_f():
    student = torch.tensor([[-1.0, -2.0, -0.3]])
    teacher = torch.tensor([[-2.0, -1.0, -9.0]])
    values = sampled_divergence(student, teacher, torch.tensor([[1, 1, 0]]), "forward_kl")
    log_u = teacher - student
    expected = torch.exp(log_u) * log_u
    assert torch.allclose(values[0, :2], expected[0, :2]) and values[0, 2] == 0


# ------------------------------------------------------------------ policy loss


def test_policy_loss_value_gradient_and_normalization():
    gen = torch.Generator().manual_seed(6)
    logp = (-torch.rand(2, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    adv = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    loss, metrics = opd_policy_loss(logp, logp.detach(), adv, mask)
    assert loss.item() == pytest.approx(-(adv * mask).sum().item() / 5, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(grad, -adv * mask / 5)
    assert metrics["policy/ratio"].item() == pytest.approx(1.0)
    assert metrics["policy/approx_kl"].item() == pytest.approx(0.0)
    summed, _ = opd_policy_loss(logp, logp.detach(), adv, mask, normalizer=1.0)
    assert summed.item() == pytest.approx(5 * loss.item(), rel=1e-12)


def test_policy_loss_ppo_clipping():
    old = torch.zeros(1, 4, dtype=torch.float64)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 1.5]], dtype=torch.float64)).requires_grad_()
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=torch.float64)
    loss, metrics = opd_policy_loss(logp, old, adv, torch.ones(1, 4), clip_eps=0.2)
    # min(r A, clip(r) A): 1.2, -0.8, 1.1, -1.5 -> the first two are clipped (no gradient)
    assert loss.item() == pytest.approx(-(1.2 - 0.8 + 1.1 - 1.5) / 4, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logp)
    expected = torch.tensor([[0.0, 0.0, -1.1 / 4, 1.5 / 4]], dtype=torch.float64)
    assert torch.allclose(grad, expected)
    assert metrics["policy/clip_fraction"].item() == pytest.approx(0.5)
    # at ratio = 1 clipping changes nothing
    at_one = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    a, _ = opd_policy_loss(at_one, old, adv, torch.ones(1, 4), clip_eps=0.2)
    b, _ = opd_policy_loss(at_one, old, adv, torch.ones(1, 4))
    assert torch.equal(torch.autograd.grad(a, at_one)[0], torch.autograd.grad(b, at_one)[0])


def test_policy_loss_gradcheck():
    gen = torch.Generator().manual_seed(7)
    logp = (-torch.rand(2, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    old = logp.detach() + 0.1 * torch.randn(2, 3, generator=gen, dtype=torch.float64)
    adv = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.autograd.gradcheck(lambda x: opd_policy_loss(x, old, adv, mask)[0], (logp,))
    assert torch.autograd.gradcheck(
        lambda x: opd_policy_loss(x, old, adv, mask, clip_eps=0.5)[0], (logp,)
    )


# ------------------------------------------------------------------ GKD baseline


def test_gkd_kls_match_torch_categorical_kl():
    gen = torch.Generator().manual_seed(8)
    student = 2 * torch.randn(3, 4, 7, generator=gen, dtype=torch.float64)
    teacher = 2 * torch.randn(3, 4, 7, generator=gen, dtype=torch.float64)
    p = torch.distributions.Categorical(logits=student)
    q = torch.distributions.Categorical(logits=teacher)
    forward = torch.distributions.kl_divergence(q, p)
    reverse = torch.distributions.kl_divergence(p, q)
    assert torch.allclose(gkd_token_divergence(student, teacher, "forward_kl"), forward)
    assert torch.allclose(gkd_token_divergence(student, teacher, "reverse_kl"), reverse)
    assert torch.allclose(gkd_token_divergence(student, teacher, "reverse_kl_k3"), reverse)
    pp, qq = p.probs, q.probs
    m = 0.5 * (pp + qq)
    js = 0.5 * (qq * (qq / m).log()).sum(-1) + 0.5 * (pp * (pp / m).log()).sum(-1)
    assert torch.allclose(gkd_token_divergence(student, teacher, "js"), js)
    tv = 0.5 * (pp - qq).abs().sum(-1)
    assert torch.allclose(gkd_token_divergence(student, teacher, "tv"), tv)
    pearson = ((qq - pp) ** 2 / pp).sum(-1)
    assert torch.allclose(gkd_token_divergence(student, teacher, "pearson"), pearson)

    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    loss, metrics = gkd_token_loss(student, teacher, mask, "forward_kl")
    assert loss.item() == pytest.approx((forward * mask).sum().item() / 7, rel=1e-12)
    assert metrics["loss/gkd"].item() == pytest.approx(loss.item())


def test_gkd_loss_gradcheck_and_teacher_is_detached():
    gen = torch.Generator().manual_seed(9)
    student = torch.randn(1, 1, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(1, 1, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(1, 1)
    for divergence in ALL_DIVERGENCES:
        assert torch.autograd.gradcheck(
            lambda s, d=divergence: gkd_token_loss(s, teacher, mask, d)[0], (student,)
        ), divergence
    loss, _ = gkd_token_loss(student, teacher, mask, "js")
    loss.backward()
    assert teacher.grad is None


def test_gkd_rejects_mismatched_vocabularies():
    with pytest.raises(InputError, match="one shared vocabulary"):
        gkd_token_loss(torch.zeros(1, 2, 5), torch.zeros(1, 2, 6), torch.ones(1, 2), "js")


@pytest.mark.parametrize("divergence", ALL_DIVERGENCES)
def test_float32_agrees_with_float64(divergence):
    gen = torch.Generator().manual_seed(10)
    student = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    logp = torch.log_softmax(student, -1)[..., 0]
    logq = torch.log_softmax(teacher, -1)[..., 0]
    mask = torch.ones(2, 5)
    for dtype in [torch.float32]:
        adv32 = opd_advantages(logp.to(dtype), logq.to(dtype), mask, divergence, gamma=0.9)
        adv64 = opd_advantages(logp, logq, mask, divergence, gamma=0.9)
        assert torch.allclose(adv32.double(), adv64, rtol=1e-4, atol=1e-5)
        g32 = gkd_token_divergence(student.to(dtype), teacher.to(dtype), divergence)
        g64 = gkd_token_divergence(student, teacher, divergence)
        assert torch.allclose(g32.double(), g64, rtol=1e-4, atol=1e-6)
    assert math.isfinite(adv64.abs().max().item())
