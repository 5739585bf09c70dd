"""Dispersion bandit: exact Mallows sampling, and DPO vs MallowsPO at their optima.

The DPO/MallowsPO assertions are made at converged optima (exact fits, or the trainer checked
against them), and each would fail if MallowsPO behaved like DPO.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import BanditSection
from training.tasks.bandit import (
    fit_implicit_rewards,
    kendall_tau,
    make_bandit,
    mle_exists,
    pair_counts,
    pairwise_win_probability,
    policy_metrics,
    population_counts,
    reference_entropy,
    reward_gaps,
    sample_mallows,
)


def _kendall_distance(perm, center):
    pos = {a: i for i, a in enumerate(perm)}
    return sum(pos[center[a]] > pos[center[b]]
               for a in range(len(center)) for b in range(a + 1, len(center)))


def _exact_mallows(center, phi):
    perms = list(itertools.permutations(center))
    w = np.array([phi ** _kendall_distance(p, center) for p in perms])
    return perms, w / w.sum()


@pytest.mark.parametrize("phi", [0.3, 0.8])
def test_repeated_insertion_matches_enumeration(phi):
    center = [2, 0, 3, 1]
    perms, exact = _exact_mallows(center, phi)
    rng = np.random.default_rng(0)
    n = 20000
    counts = dict.fromkeys(perms, 0)
    for _ in range(n):
        counts[tuple(int(a) for a in sample_mallows(np.array(center), phi, rng))] += 1
    freq = np.array([counts[p] / n for p in perms])
    # 24 cells; per-cell sd <= sqrt(0.25/n) = 0.0035, 5 sd per cell
    assert np.abs(freq - exact).max() < 0.018


@pytest.mark.parametrize("phi", [0.2, 0.65, 0.95])
def test_pairwise_probability_closed_form_matches_enumeration(phi):
    center = [0, 1, 2, 3, 4]
    perms, exact = _exact_mallows(center, phi)
    for a, b in [(0, 1), (0, 2), (1, 4), (0, 4)]:
        p = sum(w for perm, w in zip(perms, exact, strict=True)
                if perm.index(center[a]) < perm.index(center[b]))
        assert pairwise_win_probability(b - a, phi) == pytest.approx(p, rel=1e-10)
    assert pairwise_win_probability(1, phi) == pytest.approx(1 / (1 + phi))
    assert pairwise_win_probability(-2, phi) == pytest.approx(1 - pairwise_win_probability(2, phi))


def test_reference_is_the_exact_first_choice_distribution():
    bandit = make_bandit(BanditSection(phis=[0.4], n_arms=4), seed=0)
    perms, exact = _exact_mallows(list(bandit.centers[0]), 0.4)
    first = np.zeros(4)
    for perm, w in zip(perms, exact, strict=True):
        first[perm[0]] += w
    np.testing.assert_allclose(np.exp(bandit.ref_logits[0].numpy()), first, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Converged DPO vs MallowsPO: what differs and what cannot


PHIS = [0.2, 0.5, 0.7]


@pytest.fixture(scope="module")
def population():
    """Exact population optima (infinite data) of DPO and MallowsPO with the true phi."""
    bandit = make_bandit(BanditSection(phis=PHIS), seed=0)
    wins = population_counts(bandit, 1.0)
    theta = -np.log(bandit.phis)
    fits = {
        "dpo": fit_implicit_rewards(bandit, wins, "dpo"),
        "theta": fit_implicit_rewards(bandit, wins, "mallowspo-theta", c=theta),
        "phi": fit_implicit_rewards(bandit, wins, "mallowspo-phi", phi=bandit.phis),
    }
    assert all(f.converged for f in fits.values())
    return bandit, fits


def test_mallows_phi_with_true_phi_recovers_one_reward_per_rank_step_dpo_does_not(population):
    bandit, fits = population
    # the Mallows link is the true pairwise probability, so its optimum is the rank itself
    for x in range(bandit.n_prompts):
        np.testing.assert_allclose(fits["phi"].rewards[x], bandit.true_utility(x)
                                   - bandit.true_utility(x).mean(), atol=1e-5)
    dpo = reward_gaps(bandit, fits["dpo"].rewards)
    theta = reward_gaps(bandit, fits["theta"].rewards)
    # DPO's reward per rank step follows the dispersion (about -log phi): 1.47 / 0.58 / 0.29
    assert dpo[0] > dpo[1] > dpo[2] > 0 and dpo.max() / dpo.min() > 4.5
    assert theta.max() / theta.min() < 1.2  # logistic link, true c: nearly flat (1.12)
    # every method ranks every prompt right at the optimum: tau cannot tell them apart
    for fit in fits.values():
        assert all(kendall_tau(fit.rewards[x], bandit.true_utility(x)) == 1.0
                   for x in range(bandit.n_prompts))


def test_theta_is_dpo_with_a_per_prompt_beta_so_rankings_match_on_any_data():
    bandit = make_bandit(BanditSection(phis=PHIS, pairs_per_prompt=50), seed=2,
                         eval_fraction=0.0)
    wins = pair_counts(bandit.train, bandit.n_prompts, bandit.n_arms)
    assert all(mle_exists(wins[x]) for x in range(bandit.n_prompts))  # a finite optimum
    c = np.array([0.3, 1.0, 2.5])
    dpo = fit_implicit_rewards(bandit, wins, "dpo")
    theta = fit_implicit_rewards(bandit, wins, "mallowspo-theta", c=c)
    np.testing.assert_allclose(theta.rewards * c[:, None], dpo.rewards, rtol=1e-4, atol=1e-6)
    # the phi link is not a rescaled logistic: its optimum is not proportional to DPO's
    phi = fit_implicit_rewards(bandit, wins, "mallowspo-phi", phi=bandit.phis)
    ratio = phi.rewards[:, 1:] / dpo.rewards[:, 1:]
    assert np.ptp(ratio, axis=1).max() > 0.05


def test_policy_level_metrics_separate_mallowspo_from_dpo(population):
    bandit, fits = population
    rows = {k: policy_metrics(bandit, f.log_policy) for k, f in fits.items()}
    # beta = 1: DPO barely moves on the dispersed prompt (P(best) 0.50), MallowsPO does (0.74)
    assert rows["phi"][2]["p_best"] > rows["dpo"][2]["p_best"] + 0.2
    assert rows["phi"][0]["p_best"] < rows["dpo"][0]["p_best"]  # and less on the clear one

    def along_curve(rewards, target_kl=0.1):  # the beta on the method's curve with this KL
        ref = torch.log_softmax(bandit.ref_logits.double(), -1).numpy()
        lo, hi = -10.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            kl = np.mean([r["kl"] for r in policy_metrics(bandit, ref + np.exp(mid) * rewards)])
            lo, hi = (lo, mid) if kl > target_kl else (mid, hi)
        return policy_metrics(bandit, ref + np.exp(lo) * rewards)

    utility = np.stack([bandit.true_utility(x) for x in range(bandit.n_prompts)])
    best = along_curve(utility)  # the KL-optimal policy for the rank utility
    at = {k: along_curve(f.rewards) for k, f in fits.items()}

    def mean(rows, key):
        return np.mean([r[key] for r in rows])

    # MallowsPO-phi (true phi) is the KL-optimal policy for the rank utility; DPO falls short
    assert mean(at["phi"], "utility") == pytest.approx(mean(best, "utility"), abs=1e-6)
    assert mean(at["dpo"], "utility") < mean(best, "utility") - 5e-3
    # ... and DPO wins on the dispersion-scaled win rate: the trade-off is real
    assert mean(at["dpo"], "win_rate") > mean(at["phi"], "win_rate") + 2e-3
    # MallowsPO spreads the KL budget so P(best) is similar on every prompt
    spread = {k: np.ptp([r["p_best"] for r in v]) for k, v in at.items()}
    assert spread["phi"] < 0.7 * spread["dpo"]  # 0.28 vs 0.46 at KL 0.1


def test_entropy_dispersion_spread_is_a_property_of_its_shape_not_its_scale():
    bandit = make_bandit(BanditSection(phis=PHIS), seed=0)
    wins = population_counts(bandit, 1.0)
    ell = -np.log(reference_entropy(bandit))
    spreads = []
    for scale in (0.29, 1.7):
        gaps = reward_gaps(bandit, fit_implicit_rewards(bandit, wins, "mallowspo-theta",
                                                        c=scale * ell).rewards)
        spreads.append(gaps.max() / gaps.min())
    # -log Hn grows like (-log phi)^2 here: a scale cannot flatten the reward (2.47 > 1.12)
    assert spreads[0] == pytest.approx(spreads[1], rel=1e-4)
    assert spreads[0] > 2.0


def test_trainer_converges_to_the_exact_optimum(runs_dir):
    """The project's trainer, full batch to convergence: DPO keeps the dispersion, MallowsPO
    (true phi) removes it, and both match the exact optimum of the same pairs."""
    from training import train

    bandit = make_bandit(BanditSection(phis=PHIS, pairs_per_prompt=500), seed=0)
    wins = pair_counts(bandit.train, bandit.n_prompts, bandit.n_arms)
    spreads = {}
    for algorithm, dispersion, kw in (("dpo", "reference_entropy", {}),
                                      ("mallowspo-phi", "oracle", {"phi": bandit.phis})):
        cfg = {"algorithm": algorithm, "seed": 0, "model": {"name": "tabular"},
               "data": {"task": "bandit", "bandit": {"phis": PHIS, "pairs_per_prompt": 500}},
               "batch_size": len(bandit.train), "max_steps": 150, "eval_every": 150,
               "max_grad_norm": None, "optimizer": {"lr": 0.1},
               "preference": {"beta": 1.0, "dispersion": dispersion}}
        metrics = train(cfg).metrics
        exact = reward_gaps(bandit, fit_implicit_rewards(bandit, wins, algorithm, **kw).rewards)
        got = np.array([metrics[f"eval/reward_gap/p{x}"] for x in range(len(PHIS))])
        np.testing.assert_allclose(got, exact, rtol=0.01)
        spreads[algorithm] = metrics["eval/reward_gap_spread"]
        for x in range(len(PHIS)):
            assert 0.0 < metrics[f"eval/p_best/p{x}"] < 1.0
    assert spreads["dpo"] > 4.0 and spreads["mallowspo-phi"] < 1.5


def test_policy_metrics_of_the_reference():
    bandit = make_bandit(BanditSection(phis=[0.3, 0.8], n_arms=4), seed=2)
    ref = torch.log_softmax(bandit.ref_logits.double(), -1).numpy()
    for x, row in enumerate(policy_metrics(bandit, ref)):
        phi = bandit.phis[x]
        assert row["win_rate"] == pytest.approx(0.5)  # against itself
        assert row["kl"] == pytest.approx(0.0, abs=1e-12)
        assert row["p_best"] == pytest.approx(1.0 / sum(phi**j for j in range(4)), rel=1e-6)
    greedy = np.full_like(ref, -1e9)
    greedy[np.arange(2), bandit.centers[:, 0]] = 0.0
    for row in policy_metrics(bandit, greedy):
        assert row["utility"] == pytest.approx(1.0) and row["p_best"] == pytest.approx(1.0)


def test_mle_exists_is_strong_connectivity():
    wins = np.zeros((3, 3))
    wins[0, 1] = wins[1, 2] = 2
    assert not mle_exists(wins)  # arm 0 never lost
    wins[2, 0] = 1
    assert mle_exists(wins)


def test_shared_ranking_keeps_the_streams():
    cfg = BanditSection(phis=PHIS, pairs_per_prompt=20)
    plain, shared = make_bandit(cfg, seed=4), make_bandit(cfg, seed=4, shared_ranking=True)
    assert (shared.centers == plain.centers[0]).all()
    np.testing.assert_allclose(shared.ref_logits[0], plain.ref_logits[0])


def _example():
    path = Path(__file__).resolve().parents[2] / "examples" / "mallowspo_bandit.py"
    spec = importlib.util.spec_from_file_location("mallowspo_bandit_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_script_runs(runs_dir, capsys):
    """Smoke test of examples/mallowspo_bandit.py (150 minibatch steps: not converged, so no
    claim about MallowsPO is checked on it; the tests above check them at the optimum)."""
    results = _example().main(["--seed", "0"])
    out = " ".join(capsys.readouterr().out.split())
    assert "gap max/min" in out
    # an unconverged run must not be presented as the paper's claim
    assert "not converged" in out and "mallowspo_study.md" in out
    assert set(results) == {"dpo", "mallowspo-theta", "mallowspo-phi"}
    for metrics in results.values():
        assert 0.0 < metrics["eval/p_best_min"] <= 1.0
