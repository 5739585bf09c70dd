"""Preference losses against independent computations (closed forms, enumeration, Decimal)."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, getcontext

import pytest
import torch

from simopt.errors import InputError
from training.losses.preference import (
    PREFERENCE_LOSSES,
    PreferenceInputs,
    dispersion_weight,
    dpo_loss,
    get_preference_loss,
    ipo_loss,
    log_mallows_pairwise,
    mallows_phi_loss,
    mallows_theta_loss,
    preference_delta,
    response_logits_mask,
    simpo_delta,
    simpo_loss,
)

DTYPES = [torch.float32, torch.float64]


def _logps(seed: int, batch: int = 6, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [(-10.0 * torch.rand(batch, generator=gen, dtype=dtype)) for _ in range(4)]


# ------------------------------------------------------------------ margins and baselines


def test_preference_delta_is_scaled_logratio_difference():
    pc, pr, rc, rr = _logps(0)
    delta = preference_delta(pc, pr, rc, rr, beta=0.3)
    for i in range(len(pc)):
        expected = 0.3 * ((pc[i].item() - rc[i].item()) - (pr[i].item() - rr[i].item()))
        assert delta[i].item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_dpo_matches_closed_form(label_smoothing):
    pc, pr, rc, rr = _logps(1)
    losses, metrics = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=label_smoothing)
    for i in range(len(pc)):
        d = 0.5 * ((pc[i] - rc[i]) - (pr[i] - rr[i])).item()
        expected = (1 - label_smoothing) * math.log1p(math.exp(-d)) + label_smoothing * math.log1p(
            math.exp(d)
        )
        assert losses[i].item() == pytest.approx(expected, rel=1e-12)
    chosen = 0.5 * (pc - rc)
    rejected = 0.5 * (pr - rr)
    assert metrics["reward/margin"].item() == pytest.approx((chosen - rejected).mean().item())
    assert metrics["reward/accuracy"].item() == pytest.approx(
        (chosen > rejected).double().mean().item()
    )


def test_ipo_is_squared_distance_to_half_inverse_beta():
    pc, pr, rc, rr = _logps(2)
    beta = 0.25
    losses, _ = ipo_loss(pc, pr, rc, rr, beta)
    h = (pc - rc) - (pr - rr)
    assert torch.allclose(losses, (h - 2.0) ** 2, rtol=1e-12)
    # the minimizer: margin exactly 1/(2 beta) gives zero loss
    zero, _ = ipo_loss(rc + 2.0, rr, rc, rr, beta)
    assert torch.allclose(zero, torch.zeros_like(zero), atol=1e-12)


def test_simpo_matches_closed_form():
    chosen_avg = torch.tensor([-0.5, -1.2, -2.0], dtype=torch.float64)
    rejected_avg = torch.tensor([-0.9, -1.0, -2.5], dtype=torch.float64)
    losses, metrics = simpo_loss(chosen_avg, rejected_avg, beta=2.0, gamma_beta_ratio=0.5)
    for i in range(3):
        z = 2.0 * (chosen_avg[i] - rejected_avg[i]).item() - 1.0  # gamma = 0.5 * 2
        assert losses[i].item() == pytest.approx(math.log1p(math.exp(-z)), rel=1e-12)
    assert metrics["reward/chosen"].item() == pytest.approx(2.0 * chosen_avg.mean().item())


# ------------------------------------------------------------------ MallowsPO-theta


def test_mallows_theta_with_c_one_is_exactly_dpo():
    pc, pr, rc, rr = _logps(3)
    delta = preference_delta(pc, pr, rc, rr, beta=0.1)
    dpo, _ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert torch.equal(mallows_theta_loss(delta, torch.ones_like(delta)), dpo)


@pytest.mark.parametrize("k", [0.3, 2.0, 7.5])
def test_mallows_theta_with_constant_c_is_dpo_with_scaled_beta(k):
    pc, pr, rc, rr = _logps(4)
    delta = preference_delta(pc, pr, rc, rr, beta=0.1)
    dpo_k, _ = dpo_loss(pc, pr, rc, rr, beta=0.1 * k)
    assert torch.allclose(mallows_theta_loss(delta, k), dpo_k, rtol=1e-12, atol=1e-14)


def test_mallows_theta_on_simpo_with_c_one_is_simpo():
    chosen_avg, rejected_avg = torch.tensor([-0.5, -2.0]), torch.tensor([-0.7, -1.0])
    delta = simpo_delta(chosen_avg, rejected_avg, beta=2.5, gamma_beta_ratio=0.4)
    simpo, _ = simpo_loss(chosen_avg, rejected_avg, beta=2.5, gamma_beta_ratio=0.4)
    assert torch.equal(mallows_theta_loss(delta, 1.0), simpo)


def test_maximal_dispersion_gives_log2_and_zero_gradient():
    delta = torch.tensor([-4.0, -0.3, 0.0, 0.8, 12.0], dtype=torch.float64, requires_grad=True)
    theta_losses = mallows_theta_loss(delta, torch.zeros(5, dtype=torch.float64))
    (grad_theta,) = torch.autograd.grad(theta_losses.sum(), delta)
    phi_losses = mallows_phi_loss(delta, torch.ones(5, dtype=torch.float64))
    (grad_phi,) = torch.autograd.grad(phi_losses.sum(), delta)
    for losses, grad in [(theta_losses, grad_theta), (phi_losses, grad_phi)]:
        assert torch.allclose(losses, torch.full_like(losses, math.log(2.0)), rtol=1e-15)
        assert torch.count_nonzero(grad) == 0
    # the limit phi -> 1 is continuous: 1 - 1e-6 is within 1e-5 of log 2 and nearly flat
    near = delta.detach().clone().requires_grad_()
    near_losses = mallows_phi_loss(near, 1.0 - 1e-6)
    (near_grad,) = torch.autograd.grad(near_losses.sum(), near)
    assert torch.allclose(near_losses, torch.full_like(near_losses, math.log(2.0)), atol=1e-5)
    assert near_grad.abs().max().item() < 1e-5


# ------------------------------------------------------------------ MallowsPO-phi link


def _kendall_distance(perm: tuple[int, ...]) -> int:
    return sum(1 for a, b in itertools.combinations(range(len(perm)), 2) if perm[a] > perm[b])


@pytest.mark.parametrize("n_items", [3, 5])
@pytest.mark.parametrize("phi", [0.05, 0.37, 0.8])
def test_link_equals_mallows_pairwise_order_probability_by_enumeration(n_items, phi):
    """g_phi(d) = P(the items ranked i and i+d in the central ranking keep their order)."""
    perms = list(itertools.permutations(range(n_items)))  # perm[position] = item
    weights = [phi ** _kendall_distance(p) for p in perms]
    total = sum(weights)
    for i, j in itertools.combinations(range(n_items), 2):
        prob = sum(w for p, w in zip(perms, weights, strict=True) if p.index(i) < p.index(j))
        prob /= total
        g = log_mallows_pairwise(torch.tensor([float(j - i)], dtype=torch.float64), phi).exp()
        assert g.item() == pytest.approx(prob, rel=1e-12), (i, j)


@pytest.mark.parametrize("dtype", DTYPES)
def test_link_at_one_and_symmetry(dtype):
    phis = torch.tensor([1e-6, 0.1, 0.5, 0.9, 1 - 1e-4], dtype=dtype)
    g1 = log_mallows_pairwise(torch.ones_like(phis), phis).exp()
    assert torch.allclose(g1, 1.0 / (1.0 + phis), rtol=1e-5 if dtype == torch.float32 else 1e-12)
    s = torch.tensor([0.01, 0.3, 1.7, 4.0, 9.5], dtype=dtype)
    g_pos = log_mallows_pairwise(s, phis).exp()
    g_neg = log_mallows_pairwise(-s, phis).exp()
    assert torch.allclose(
        g_pos + g_neg, torch.ones_like(s), atol=1e-6 if dtype == torch.float32 else 1e-13
    )


def _decimal_log_link(d: float, phi: float) -> float:
    """log g_phi(d) from the defining formula in 400-digit decimal arithmetic."""
    getcontext().prec = 400  # 1 - g(50) ~ 1e-300 must survive the subtraction
    dd, p = Decimal(d), Decimal(phi)
    theta = -p.ln()

    def h(k: Decimal) -> Decimal:
        return k / (1 - p**k) if k != 0 else 1 / theta  # h(0+) = 1/theta

    def g(s: Decimal) -> Decimal:
        return h(s + 1) - h(s)

    return float(g(dd).ln() if dd >= 0 else (1 - g(-dd)).ln())


@pytest.mark.parametrize("dtype", DTYPES)
def test_link_matches_high_precision_formula_at_real_margins(dtype):
    phis = [1e-6, 1e-3, 0.2, 0.6, 0.95, 0.999, 1 - 1e-6]
    ds = [-50.0, -7.3, -1.0, -0.25, -1e-4, 0.0, 1e-4, 0.25, 1.0, 2.5, 7.3, 50.0]
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    for phi in phis:
        # compare against the decimal formula at the phi that the dtype actually represents
        phi_t = torch.tensor(phi, dtype=dtype)
        values = log_mallows_pairwise(torch.tensor(ds, dtype=dtype), phi_t)
        for d, value in zip(ds, values.tolist(), strict=True):
            expected = _decimal_log_link(d, phi_t.item())
            assert value == pytest.approx(expected, rel=rel, abs=1e-30), (phi, d)


def test_value_at_zero_is_right_hand_limit():
    for phi in [0.1, 0.5, 0.9]:
        theta = -math.log(phi)
        at_zero = log_mallows_pairwise(torch.tensor([0.0], dtype=torch.float64), phi).exp().item()
        assert at_zero == pytest.approx(1.0 / (1.0 - phi) - 1.0 / theta, rel=1e-12)
        right = log_mallows_pairwise(torch.tensor([1e-9], dtype=torch.float64), phi).exp().item()
        left = log_mallows_pairwise(torch.tensor([-1e-9], dtype=torch.float64), phi).exp().item()
        assert right == pytest.approx(at_zero, abs=1e-8)
        assert left == pytest.approx(1.0 - at_zero, abs=1e-8)  # the jump closes only at phi=1


@pytest.mark.parametrize("dtype", DTYPES)
def test_phi_loss_finite_value_and_gradient_on_grid(dtype):
    delta = torch.linspace(-50, 50, 1001, dtype=dtype).repeat(6)
    phi = torch.tensor([1e-6, 1e-3, 0.3, 0.9, 0.9999, 1 - 1e-6], dtype=dtype).repeat_interleave(
        1001
    )
    delta.requires_grad_(True)
    losses = mallows_phi_loss(delta, phi)
    (grad,) = torch.autograd.grad(losses.sum(), delta)
    assert torch.isfinite(losses).all() and torch.isfinite(grad).all()
    assert (losses >= 0).all()
    # a correctly ordered pair is never penalized more than a wrongly ordered one
    assert (grad <= 0).all()


def test_phi_loss_rejects_phi_outside_unit_interval():
    with pytest.raises(InputError, match="phi must lie in"):
        mallows_phi_loss(torch.zeros(2), torch.tensor([0.5, 1.5]))
    with pytest.raises(InputError, match="phi must lie in"):
        mallows_phi_loss(torch.zeros(2), 0.0)


# ------------------------------------------------------------------ gradients and dtypes


def test_every_loss_passes_gradcheck():
    gen = torch.Generator().manual_seed(5)
    args = [
        (-5 * torch.rand(4, generator=gen, dtype=torch.float64)).requires_grad_() for _ in range(2)
    ]
    ref = [-5 * torch.rand(4, generator=gen, dtype=torch.float64) for _ in range(2)]
    c = torch.tensor([0.2, 1.0, 2.5, 0.0], dtype=torch.float64)
    phi = torch.tensor([0.05, 0.5, 0.97, 1.0], dtype=torch.float64)
    checks = {
        "dpo": lambda a, b: dpo_loss(a, b, *ref, beta=0.7, label_smoothing=0.1)[0],
        "ipo": lambda a, b: ipo_loss(a, b, *ref, beta=0.7)[0],
        "simpo": lambda a, b: simpo_loss(a, b, beta=2.0, gamma_beta_ratio=0.3)[0],
        "theta": lambda a, b: mallows_theta_loss(preference_delta(a, b, *ref, beta=0.7), c),
        # margins away from 0, where the exact Mallows link jumps (right-hand convention)
        "phi": lambda a, b: mallows_phi_loss(preference_delta(a, b, *ref, 0.7) + 0.05, phi),
    }
    for name, fn in checks.items():
        assert torch.autograd.gradcheck(fn, tuple(args)), name


def test_phi_loss_gradcheck_on_both_sides_of_zero():
    delta = torch.tensor([-30.0, -2.0, -0.01, 0.01, 3.0, 40.0], dtype=torch.float64)
    delta.requires_grad_()
    for phi in [1e-6, 0.25, 0.9, 1 - 1e-6]:
        assert torch.autograd.gradcheck(lambda d, p=phi: mallows_phi_loss(d, p), (delta,))


def test_float32_agrees_with_float64():
    pc, pr, rc, rr = _logps(6)
    c = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 0.0], dtype=torch.float64)
    phi = torch.tensor([0.01, 0.2, 0.5, 0.9, 0.999, 1.0], dtype=torch.float64)

    def all_losses(dtype):
        a, b, r1, r2 = (t.to(dtype) for t in (pc, pr, rc, rr))
        delta = preference_delta(a, b, r1, r2, beta=0.5)
        return torch.cat(
            [
                dpo_loss(a, b, r1, r2, 0.5)[0],
                ipo_loss(a, b, r1, r2, 0.5)[0],
                simpo_loss(a / 7, b / 9, 2.0, 0.5)[0],
                mallows_theta_loss(delta, c.to(dtype)),
                mallows_phi_loss(delta, phi.to(dtype)),
            ]
        )

    assert torch.allclose(all_losses(torch.float32).double(), all_losses(torch.float64), rtol=1e-5)


# ------------------------------------------------------------------ dispersion weight


def _entropy_reference(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.double(), -1)
    return -(p * torch.log(p)).sum(-1)


def test_dispersion_weight_matches_direct_computation():
    gen = torch.Generator().manual_seed(7)
    chosen = 3 * torch.randn(2, 5, 4, generator=gen)
    rejected = 3 * torch.randn(2, 6, 4, generator=gen)
    chosen_mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 0]])
    rejected_mask = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
    c, phi, hn = dispersion_weight(chosen, chosen_mask, rejected, rejected_mask, scale=0.29)
    for b in range(2):
        hw = _entropy_reference(chosen[b])[chosen_mask[b].bool()].mean() / math.log(4)
        hl = _entropy_reference(rejected[b])[rejected_mask[b].bool()].mean() / math.log(4)
        expected_hn = 0.5 * (hw + hl).item()
        assert hn[b].item() == pytest.approx(expected_hn, rel=1e-6)
        assert c[b].item() == pytest.approx(-0.29 * math.log(expected_hn), rel=1e-5)
        assert phi[b].item() == pytest.approx(expected_hn**0.29, rel=1e-6)
    assert not c.requires_grad


def test_uniform_reference_gives_zero_weight():
    logits = torch.zeros(3, 7, 11)
    mask = torch.ones(3, 7)
    c, phi, hn = dispersion_weight(logits, mask, logits, mask)
    assert torch.allclose(hn, torch.ones(3))
    assert torch.allclose(c, torch.zeros(3), atol=1e-6)
    assert torch.allclose(phi, torch.ones(3))


def test_dispersion_is_a_per_token_mean_not_a_sum():
    gen = torch.Generator().manual_seed(8)
    base = torch.randn(1, 4, 6, generator=gen)
    doubled = torch.cat([base, base], dim=1)  # twice the length, same per-token entropies
    _, _, hn_short = dispersion_weight(base, torch.ones(1, 4), base, torch.ones(1, 4))
    _, _, hn_long = dispersion_weight(doubled, torch.ones(1, 8), doubled, torch.ones(1, 8))
    assert torch.allclose(hn_short, hn_long, rtol=1e-6)


def test_dispersion_ignores_padding_side_and_prompt_tokens():
    gen = torch.Generator().manual_seed(9)
    response = torch.randn(1, 3, 5, generator=gen)  # logits of the scored positions
    prompt = torch.randn(1, 2, 5, generator=gen)
    pad = torch.randn(1, 2, 5, generator=gen)
    right = torch.cat([prompt, response, pad], dim=1)
    right_mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0]])
    left = torch.cat([pad, prompt, response], dim=1)
    left_mask = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    other_prompt = torch.cat([100 * torch.randn(1, 2, 5, generator=gen), response, pad], dim=1)
    results = [
        dispersion_weight(x, m, x, m)[2]
        for x, m in [(right, right_mask), (left, left_mask), (other_prompt, right_mask)]
    ]
    assert torch.allclose(results[0], results[1]) and torch.allclose(results[0], results[2])


def test_response_logits_mask_selects_positions_that_predict_response_tokens():
    # row 0 input_ids: p p r r r pad -> logits at 1, 2, 3 predict response tokens 2, 3, 4
    # row 1 (left-padded): pad p p r r r -> logits at 2, 3, 4; the last position predicts nothing
    token_mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]])
    assert response_logits_mask(token_mask).tolist() == [[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]]


def test_dispersion_errors_name_the_problem():
    logits = torch.zeros(2, 3, 4)
    with pytest.raises(InputError, match="no scored position"):
        dispersion_weight(logits, torch.tensor([[1, 1, 0], [0, 0, 0]]), logits, torch.ones(2, 3))
    with pytest.raises(InputError, match=r"\(B, T, V\)"):
        dispersion_weight(logits, torch.ones(2, 4), logits, torch.ones(2, 3))
    with pytest.raises(InputError, match="V >= 2"):
        dispersion_weight(torch.zeros(2, 3, 1), torch.ones(2, 3), logits, torch.ones(2, 3))


# ------------------------------------------------------------------ registry


def test_registry_names_and_uniform_call():
    assert set(PREFERENCE_LOSSES) == {"dpo", "ipo", "simpo", "mallowspo-theta", "mallowspo-phi"}
    pc, pr, rc, rr = _logps(10, batch=4)
    inputs = PreferenceInputs(
        pc,
        pr,
        rc,
        rr,
        policy_chosen_logps_avg=pc / 5,
        policy_rejected_logps_avg=pr / 5,
        c=torch.ones(4, dtype=torch.float64),
        phi=torch.full((4,), 0.5, dtype=torch.float64),
    )
    dpo, _ = PREFERENCE_LOSSES["dpo"](inputs, beta=0.2)
    theta, metrics = PREFERENCE_LOSSES["mallowspo-theta"](inputs, beta=0.2)
    assert torch.equal(theta, dpo) and "dispersion/c" in metrics
    simpo, _ = PREFERENCE_LOSSES["simpo"](inputs, beta=2.0, gamma_beta_ratio=0.3)
    theta_simpo, _ = get_preference_loss("mallowspo-theta")(
        inputs, beta=2.0, base="simpo", gamma_beta_ratio=0.3
    )
    assert torch.equal(theta_simpo, simpo)
    phi_losses, _ = PREFERENCE_LOSSES["mallowspo-phi"](inputs, beta=0.2)
    expected = mallows_phi_loss(preference_delta(pc, pr, rc, rr, 0.2), 0.5)
    assert torch.equal(phi_losses, expected)
    assert PREFERENCE_LOSSES["mallowspo-phi"].uses_dispersion
    assert not PREFERENCE_LOSSES["dpo"].uses_dispersion


def test_registry_errors():
    with pytest.raises(InputError, match="unknown preference algorithm 'kto'"):
        get_preference_loss("kto")
    inputs = PreferenceInputs(torch.zeros(2), torch.zeros(2))
    with pytest.raises(InputError, match="needs reference log-probs"):
        PREFERENCE_LOSSES["dpo"](inputs, beta=0.1)
    with pytest.raises(InputError, match="needs inputs.c"):
        PREFERENCE_LOSSES["mallowspo-theta"](inputs, beta=0.1)
    with pytest.raises(InputError, match="beta must be > 0"):
        dpo_loss(*[torch.zeros(2)] * 4, beta=0.0)


def test_phi_loss_in_bfloat16_is_computed_in_float32_and_cast_back():
    delta = torch.tensor([-1e4, -20.0, -0.5, 0.0, 0.5, 20.0, 1e4])
    phi = torch.tensor([1e-6, 0.3, 0.6, 0.9, 0.99, 0.999, 1 - 1e-6])
    half = mallows_phi_loss(delta.bfloat16(), phi)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), mallows_phi_loss(delta, phi), rtol=1e-2, atol=1e-3)
