"""Synthetic dispersion bandit: the MallowsPO paper's point, small enough for a CPU.

Each prompt ``x`` has ``K`` arms (responses), a true ranking ``sigma_x`` of them and a true
Kendall-Mallows dispersion ``phi_x`` in (0, 1): a full ranking ``pi`` has probability
``P(pi | x) ∝ phi_x ** d_K(pi, sigma_x)`` (``d_K``: number of discordant pairs). A preference pair
is two distinct arms drawn uniformly, the winner being the one ranked higher in a fresh ``pi``.
Two arms ``d`` places apart in ``sigma_x`` are then ordered correctly with probability
``g_phi(d) = h(d+1) - h(d)``, ``h(k) = k / (1 - phi^k)`` (so ``g_phi(1) = 1/(1+phi)``).

The policy is a table of logits (prompt x arm), viewed as a one-token language model so the
generic preference trainer runs unchanged: the "prompt token" is the prompt index, the response
token is the arm. The reference policy is SFT-like: ``pi_ref(a|x)`` is the exact probability that
``a`` is ranked first, ``phi_x^{rank(a)} / sum_j phi_x^j``, so its entropy is high exactly where
preferences are dispersed; MallowsPO reads ``c(x)`` / ``phi(x)`` from that entropy
(``preference.dispersion: reference_entropy``, the paper's estimator) or, as a diagnostic, from
the true ``phi_x`` (``oracle``).

At the Bradley-Terry optimum DPO's implicit reward gap between adjacent arms is about
``logit(g_phi(1)) = -log phi_x``: the dispersion is mixed into the reward scale (tiny gaps for
dispersed prompts). MallowsPO divides it out, giving comparable gaps on every prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from training.config import BanditSection
from training.data import TokenizedPair


def sample_mallows(center: np.ndarray, phi: float, rng: np.random.Generator) -> np.ndarray:
    """One ranking from the Kendall Mallows model by the repeated insertion method.

    Items of ``center`` (best first) are inserted one at a time; the ``i``-th item (1-based) goes
    to position ``j`` in ``1..i`` with probability ``phi^(i-j) / (1 + phi + ... + phi^(i-1))``,
    i.e. it jumps ahead of ``i - j`` earlier items, creating that many inversions. The result
    has ``P(pi) ∝ phi^{d_K(pi, center)}`` exactly (Doignon, Pekec & Regenwetter 2004).

    Returns:
        ``(K,)`` array of items, best first.
    """
    ranking: list[int] = []
    u = rng.random(len(center))
    for i, item in enumerate(center, start=1):
        # jump k = i - j on {0..i-1} with P(k) ∝ phi^k: inverse CDF of a truncated geometric,
        # P(k <= m) = (1 - phi^(m+1)) / (1 - phi^i)
        if phi >= 1.0:
            k = int(u[i - 1] * i)
        else:
            k = int(np.floor(np.log1p(-u[i - 1] * (1.0 - phi**i)) / np.log(phi)))
        ranking.insert(i - 1 - min(k, i - 1), int(item))
    return np.asarray(ranking)


def pairwise_win_probability(d: int, phi: float) -> float:
    """``g_phi(d)``: P(the item ``d`` places higher in the center wins), closed form."""
    if d == 0:
        return 0.5
    if d < 0:
        return 1.0 - pairwise_win_probability(-d, phi)

    def h(k: int) -> float:
        return k / (1.0 - phi**k)

    return h(d + 1) - h(d)


class TabularPolicy(nn.Module):
    """``pi(a | x) = softmax(logits[x])[a]`` shaped as a causal LM over arm tokens.

    ``forward(input_ids)`` takes ``(B, T)`` ids whose first column is the prompt index and
    returns logits ``(B, T, K)``: position 0 holds ``logits[x]`` (it predicts the arm at
    position 1); later positions are zeros and never scored.
    """

    def __init__(self, init_logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(init_logits.detach().clone().float())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **_: object) -> SimpleNamespace:
        B, T = input_ids.shape
        first = self.logits[input_ids[:, 0]]  # (B, K)
        rest = first.new_zeros(B, T - 1, first.shape[-1])  # (B, T-1, K)
        # the same ``.logits`` attribute a transformers CausalLMOutput has
        return SimpleNamespace(logits=torch.cat([first.unsqueeze(1), rest], dim=1))


@dataclass
class DispersionBandit:
    """A drawn bandit instance.

    Attributes:
        phis: ``(P,)`` true dispersion per prompt.
        centers: ``(P, K)`` true ranking per prompt, best arm first.
        ref_logits: ``(P, K)`` log-probabilities of the reference (first-choice) policy.
        train, eval: preference pairs as one-token sequences.
    """

    phis: np.ndarray
    centers: np.ndarray
    ref_logits: torch.Tensor
    train: list[TokenizedPair]
    eval: list[TokenizedPair]

    @property
    def n_prompts(self) -> int:
        return len(self.phis)

    @property
    def n_arms(self) -> int:
        return self.centers.shape[1]

    def true_utility(self, x: int) -> np.ndarray:
        """``(K,)`` utility ``K - rank`` of each arm under the true ranking of prompt ``x``."""
        util = np.empty(self.n_arms)
        util[self.centers[x]] = np.arange(self.n_arms, 0, -1)
        return util


def make_bandit(cfg: BanditSection, seed: int, eval_fraction: float = 0.1) -> DispersionBandit:
    """Draw true rankings and preference pairs for ``cfg`` from ``seed``."""
    rng = np.random.default_rng([seed, 7])
    phis = np.asarray(cfg.phis, dtype=float)
    P, K = len(phis), cfg.n_arms
    centers = np.stack([rng.permutation(K) for _ in range(P)])
    ref_logits = torch.zeros(P, K, dtype=torch.float64)
    for x in range(P):
        rank_of = np.empty(K, dtype=int)
        rank_of[centers[x]] = np.arange(K)
        if cfg.reference == "first_choice":
            w = torch.as_tensor(phis[x] ** rank_of, dtype=torch.float64)
            ref_logits[x] = torch.log(w / w.sum())
        else:
            ref_logits[x] = -np.log(K)
    pairs = []
    for x in range(P):
        for _ in range(cfg.pairs_per_prompt):
            ranking = sample_mallows(centers[x], float(phis[x]), rng)
            a, b = rng.choice(K, size=2, replace=False)
            pos = {int(arm): i for i, arm in enumerate(ranking)}
            win, lose = (a, b) if pos[int(a)] < pos[int(b)] else (b, a)
            pairs.append(TokenizedPair([x], [int(win)], [int(lose)], phi=float(phis[x])))
    order = rng.permutation(len(pairs))
    n_eval = int(round(eval_fraction * len(pairs)))
    eval_pairs = [pairs[i] for i in order[:n_eval]]
    train_pairs = [pairs[i] for i in order[n_eval:]]
    return DispersionBandit(phis, centers, ref_logits.float(), train_pairs, eval_pairs)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a: (concordant - discordant pairs) / (n choose 2); ties count 0.

    ``b`` (the true utilities) has no ties, so this is 1 exactly when ``a`` orders every pair
    like ``b``, and 0 for an untrained (all-equal) reward.
    """
    i, j = np.triu_indices(len(a), k=1)
    return float(np.sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])) / len(i))


def learned_rewards(policy: nn.Module, reference: nn.Module, beta: float) -> torch.Tensor:
    """``(P, K)`` implicit rewards ``beta * (log pi(a|x) - log pi_ref(a|x))``."""
    logp = torch.log_softmax(_table(policy), dim=-1)
    ref_logp = torch.log_softmax(_table(reference), dim=-1)
    return beta * (logp - ref_logp)


def _table(model: nn.Module) -> torch.Tensor:
    inner = getattr(model, "module", model)  # DDP wrapper
    return inner.logits.detach().float().cpu()


def evaluate(bandit: DispersionBandit, policy: nn.Module, reference: nn.Module,
             beta: float) -> dict[str, float]:
    """Per-prompt ranking recovery and reward scale.

    Returns:
        ``eval/kendall_tau/p{x}``: Kendall tau between learned rewards and the true ranking;
        ``eval/reward_gap/p{x}``: (reward of best arm - reward of worst) / (K - 1), the learned
        reward per rank step; plus ``eval/kendall_tau_min`` and ``eval/reward_gap_spread``
        (max gap / min gap over prompts: 1 when the scale is the same on every prompt).
    """
    rewards = learned_rewards(policy, reference, beta).numpy()
    out: dict[str, float] = {}
    gaps = []
    for x in range(bandit.n_prompts):
        util = bandit.true_utility(x)
        tau = kendall_tau(rewards[x], util)
        best, worst = bandit.centers[x][0], bandit.centers[x][-1]
        gap = (rewards[x, best] - rewards[x, worst]) / (bandit.n_arms - 1)
        out[f"eval/kendall_tau/p{x}"] = tau
        out[f"eval/reward_gap/p{x}"] = float(gap)
        gaps.append(gap)
    out["eval/kendall_tau_min"] = min(out[f"eval/kendall_tau/p{x}"]
                                      for x in range(bandit.n_prompts))
    pos = [g for g in gaps if g > 0]
    out["eval/reward_gap_spread"] = float(max(pos) / min(pos)) if len(pos) == len(gaps) else \
        float("inf")
    return out


def per_prompt_table(bandit_phis: list[float], metrics: dict[str, float]) -> list[dict[str, float]]:
    """Rows ``{prompt, phi, kendall_tau, reward_gap}`` read back from a run's final metrics."""
    return [
        {
            "prompt": x,
            "phi": phi,
            "kendall_tau": metrics[f"eval/kendall_tau/p{x}"],
            "reward_gap": metrics[f"eval/reward_gap/p{x}"],
        }
        for x, phi in enumerate(bandit_phis)
    ]
