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
dispersed prompts). MallowsPO divides it out, giving comparable gaps on every prompt: with the
true ``phi`` MallowsPO-phi's population optimum is exactly one unit of reward per rank step.

With one table row per prompt, MallowsPO-theta is DPO with a per-prompt beta, so the learned
*ranking* of every prompt is DPO's at the optimum (any data); what differs is the policy
``pi ∝ pi_ref exp(r / beta)``: :func:`policy_metrics` reports the probability of the best arm,
the expected rank utility, the win rate against the reference under the true Mallows model and
the KL to the reference. :func:`fit_implicit_rewards` solves a method's loss exactly (full
batch, L-BFGS) on pair counts, per prompt or with one reward vector shared by all prompts
(``make_bandit(..., shared_ranking=True)``: same true ranking, different dispersions, the
setting where a per-prompt weight changes what is learned).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

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


def make_bandit(cfg: BanditSection, seed: int, eval_fraction: float = 0.1,
                shared_ranking: bool = False) -> DispersionBandit:
    """Draw true rankings and preference pairs for ``cfg`` from ``seed``.

    ``shared_ranking``: every prompt gets the first prompt's true ranking (prompts then differ
    only in dispersion); the random streams are the same as without it.
    """
    rng = np.random.default_rng([seed, 7])
    phis = np.asarray(cfg.phis, dtype=float)
    P, K = len(phis), cfg.n_arms
    centers = np.stack([rng.permutation(K) for _ in range(P)])
    if shared_ranking:
        centers = np.repeat(centers[:1], P, axis=0)
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
    """Per-prompt ranking recovery, reward scale and the policy's quality.

    Returns:
        ``eval/kendall_tau/p{x}``: Kendall tau between learned rewards and the true ranking;
        ``eval/reward_gap/p{x}``: (reward of best arm - reward of worst) / (K - 1), the learned
        reward per rank step; plus ``eval/kendall_tau_min`` and ``eval/reward_gap_spread``
        (max gap / min gap over prompts: 1 when the scale is the same on every prompt).
        Policy level (:func:`policy_metrics` of ``softmax(policy logits)``):
        ``eval/p_best/p{x}``, ``eval/utility/p{x}``, ``eval/win_rate/p{x}``, ``eval/kl/p{x}``,
        and over prompts ``eval/p_best_min``, ``eval/p_best_range`` (max - min),
        ``eval/win_rate_mean``, ``eval/utility_mean``.
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
    rows = policy_metrics(bandit, torch.log_softmax(_table(policy).double(), -1).numpy())
    for x, row in enumerate(rows):
        for key in ("p_best", "utility", "win_rate", "kl"):
            out[f"eval/{key}/p{x}"] = row[key]
    p_best = [r["p_best"] for r in rows]
    out["eval/p_best_min"] = min(p_best)
    out["eval/p_best_range"] = max(p_best) - min(p_best)
    out["eval/win_rate_mean"] = float(np.mean([r["win_rate"] for r in rows]))
    out["eval/utility_mean"] = float(np.mean([r["utility"] for r in rows]))
    return out


def per_prompt_table(bandit_phis: list[float], metrics: dict[str, float]) -> list[dict[str, float]]:
    """Rows ``{prompt, phi, kendall_tau, reward_gap, p_best, utility, win_rate, kl}`` read back
    from a run's final metrics (the policy-level keys only when the run logged them)."""
    rows = []
    for x, phi in enumerate(bandit_phis):
        row = {"prompt": x, "phi": phi, "kendall_tau": metrics[f"eval/kendall_tau/p{x}"],
               "reward_gap": metrics[f"eval/reward_gap/p{x}"]}
        for key in ("p_best", "utility", "win_rate", "kl"):
            if f"eval/{key}/p{x}" in metrics:
                row[key] = metrics[f"eval/{key}/p{x}"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Policy-level quality against the true Mallows preferences
# --------------------------------------------------------------------------------------------


def win_matrix(bandit: DispersionBandit, x: int) -> np.ndarray:
    """``(K, K)`` true ``P(a beats b)`` for prompt ``x`` (``g_phi`` of the rank distance).

    The diagonal is 1/2 (a tie between two draws of the same arm).
    """
    rank_of = np.empty(bandit.n_arms, dtype=int)
    rank_of[bandit.centers[x]] = np.arange(bandit.n_arms)
    phi = float(bandit.phis[x])
    return np.array([[pairwise_win_probability(int(rank_of[b] - rank_of[a]), phi)
                      for b in range(bandit.n_arms)] for a in range(bandit.n_arms)])


def policy_metrics(bandit: DispersionBandit, log_policy: np.ndarray) -> list[dict[str, float]]:
    """Quality of a policy ``pi(a|x) = exp(log_policy[x, a])`` against the true model.

    Per prompt: ``p_best`` = ``pi(best arm)``; ``utility`` = ``E_pi[(K - 1 - rank) / (K - 1)]``
    (1 = always the best arm, 0 = always the worst); ``win_rate`` = P(an answer drawn from
    ``pi`` beats one drawn from the reference under a fresh Mallows ranking; ties 1/2), so 0.5
    for the reference itself; ``kl`` = ``KL(pi ‖ pi_ref)`` in nats.
    """
    ref = torch.log_softmax(bandit.ref_logits.double(), -1).numpy()
    K = bandit.n_arms
    rows = []
    for x in range(bandit.n_prompts):
        logp = log_policy[x] - np.logaddexp.reduce(log_policy[x])
        p, q = np.exp(logp), np.exp(ref[x])
        rank_of = np.empty(K, dtype=int)
        rank_of[bandit.centers[x]] = np.arange(K)
        rows.append({
            "p_best": float(p[bandit.centers[x][0]]),
            "utility": float(p @ ((K - 1 - rank_of) / (K - 1))),
            "win_rate": float(p @ win_matrix(bandit, x) @ q),
            "kl": float(np.sum(p * (logp - ref[x]))),
        })
    return rows


def reference_entropy(bandit: DispersionBandit) -> np.ndarray:
    """``(P,)`` normalized entropy ``Hn(x) = H(pi_ref(.|x)) / log K`` of each prompt.

    A response is one token, so this is exactly what MallowsPO's ``dispersion_weight`` reads
    from the reference for any pair of the prompt.
    """
    ref = torch.log_softmax(bandit.ref_logits.double(), -1)
    return (-(ref.exp() * ref).sum(-1) / np.log(bandit.n_arms)).numpy()


# --------------------------------------------------------------------------------------------
# Exact (full-batch) optima of the preference losses on the bandit
# --------------------------------------------------------------------------------------------


def pair_counts(pairs: list[TokenizedPair], n_prompts: int, n_arms: int) -> np.ndarray:
    """``(P, K, K)`` counts ``wins[x, a, b]``: how often arm ``a`` beat ``b`` on prompt ``x``."""
    wins = np.zeros((n_prompts, n_arms, n_arms))
    for pair in pairs:
        wins[pair.prompt_ids[0], pair.chosen_ids[0], pair.rejected_ids[0]] += 1
    return wins


def population_counts(bandit: DispersionBandit, pairs_per_prompt: float = 1.0) -> np.ndarray:
    """Expected :func:`pair_counts` of ``pairs_per_prompt`` pairs per prompt (infinite data).

    A pair is an unordered arm pair drawn uniformly; ``a`` wins with ``P(a beats b)``.
    """
    P, K = bandit.n_prompts, bandit.n_arms
    wins = np.zeros((P, K, K))
    per_pair = pairs_per_prompt / (K * (K - 1) / 2)
    for x in range(P):
        w = win_matrix(bandit, x)
        np.fill_diagonal(w, 0.0)
        wins[x] = per_pair * w
    return wins


def mle_exists(wins: np.ndarray) -> bool:
    """Whether a logistic-type fit of ``wins`` (``(K, K)``) has a finite optimum.

    True iff the directed graph with an edge ``a -> b`` whenever ``a`` beat ``b`` is strongly
    connected (Zermelo / Ford's condition): otherwise a group of arms never lost to the rest
    and the rewards of the fit run off to infinity.
    """
    K = wins.shape[0]
    edges = wins > 0

    def reach(adj: np.ndarray) -> int:
        seen, stack = {0}, [0]
        while stack:
            a = stack.pop()
            for b in np.flatnonzero(adj[a]):
                if int(b) not in seen:
                    seen.add(int(b))
                    stack.append(int(b))
        return len(seen)

    return reach(edges) == K and reach(edges.T) == K


@dataclass
class RewardFit:
    """An exact fit: ``rewards`` ``(P, K)`` = ``beta log(pi/pi_ref)`` (mean 0 per prompt),
    ``log_policy`` ``(P, K)``, the final mean loss and gradient norm."""

    rewards: np.ndarray
    log_policy: np.ndarray
    loss: float
    grad_norm: float
    converged: bool


def fit_implicit_rewards(
    bandit: DispersionBandit,
    wins: np.ndarray,
    algorithm: Literal["dpo", "mallowspo-theta", "mallowspo-phi"],
    beta: float = 1.0,
    c: np.ndarray | None = None,
    phi: np.ndarray | None = None,
    shared: bool = False,
    tol: float = 1e-9,
    max_iter: int = 500,
    init: np.ndarray | None = None,
) -> RewardFit:
    """Minimize the method's mean loss over ``wins`` exactly (full batch, float64 L-BFGS).

    The policy is ``log pi(.|x) = log_softmax(ref_logits[x] + u[x])`` with a free table ``u``
    (``shared=False``: the trainer's :class:`TabularPolicy`) or one vector ``u`` for every
    prompt (``shared=True``). The margins and losses are the library's own
    (:func:`~training.losses.preference.preference_delta`, ``dpo_loss``,
    ``mallows_theta_loss``, ``mallows_phi_loss``); ``c`` / ``phi`` are per-prompt ``(P,)``.
    A fit whose optimum is at infinity (:func:`mle_exists` false) stops at ``max_iter`` with
    ``converged=False``.

    ``init``: starting ``u`` (``(P, K)``, or ``(1, K)`` when shared); default 0 (the
    reference), except for ``mallowspo-phi``, which starts from the DPO fit: its link is
    discontinuous at ``Δ = 0`` (``g_phi(0+) > 1/2``, the paper's right-hand limit), so at the
    reference, where every margin is 0, the full-batch loss has a local minimum whenever both
    orders of a pair were observed, and a line search cannot leave it.
    """
    from training.losses.preference import (
        dpo_loss,
        mallows_phi_loss,
        mallows_theta_loss,
        preference_delta,
    )

    P, K = bandit.n_prompts, bandit.n_arms
    xs, ws, ls = np.nonzero(wins)
    weight = torch.as_tensor(wins[xs, ws, ls], dtype=torch.float64)
    weight = weight / weight.sum()
    xs_t, ws_t, ls_t = (torch.as_tensor(v, dtype=torch.long) for v in (xs, ws, ls))
    ref = torch.log_softmax(bandit.ref_logits.double(), -1)
    if init is None and algorithm == "mallowspo-phi":
        dpo = fit_implicit_rewards(bandit, wins, "dpo", beta=beta, shared=shared, tol=tol,
                                   max_iter=max_iter)
        init = (dpo.log_policy - ref.numpy())[:1] if shared else dpo.log_policy - ref.numpy()
    u = torch.zeros(1 if shared else P, K, dtype=torch.float64)
    if init is not None:
        u = torch.as_tensor(np.asarray(init, dtype=float), dtype=torch.float64).clone()
    u.requires_grad_(True)
    per_pair = {"c": None, "phi": None}
    for name, values in (("c", c), ("phi", phi)):
        if values is not None:
            per_pair[name] = torch.as_tensor(np.asarray(values, dtype=float)[xs],
                                             dtype=torch.float64)

    def objective() -> torch.Tensor:
        logp = torch.log_softmax(ref + u, -1)  # (P, K) by broadcasting when shared
        pc, pr = logp[xs_t, ws_t], logp[xs_t, ls_t]
        rc, rr = ref[xs_t, ws_t], ref[xs_t, ls_t]
        if algorithm == "dpo":
            losses = dpo_loss(pc, pr, rc, rr, beta)[0]
        else:
            delta = preference_delta(pc, pr, rc, rr, beta)
            if algorithm == "mallowspo-theta":
                if per_pair["c"] is None:
                    raise ValueError("mallowspo-theta needs c")
                losses = mallows_theta_loss(delta, per_pair["c"])
            elif algorithm == "mallowspo-phi":
                if per_pair["phi"] is None:
                    raise ValueError("mallowspo-phi needs phi")
                losses = mallows_phi_loss(delta, per_pair["phi"])
            else:
                raise ValueError(f"unknown algorithm {algorithm!r}")
        return (weight * losses).sum()

    optimizer = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                                  tolerance_change=0.0, history_size=50,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimizer.step(closure)
    loss = closure().detach()
    grad_norm = float(u.grad.abs().max())
    with torch.no_grad():
        log_policy = torch.log_softmax(ref + u, -1)
        rewards = beta * (log_policy - ref)
        rewards = rewards - rewards.mean(-1, keepdim=True)
    return RewardFit(rewards.numpy(), log_policy.numpy(), float(loss), grad_norm,
                     grad_norm <= 10 * tol)


def reward_gaps(bandit: DispersionBandit, rewards: np.ndarray) -> np.ndarray:
    """``(P,)`` reward per rank step, (best - worst) / (K - 1), as :func:`evaluate` reports."""
    best, worst = bandit.centers[:, 0], bandit.centers[:, -1]
    idx = np.arange(bandit.n_prompts)
    return (rewards[idx, best] - rewards[idx, worst]) / (bandit.n_arms - 1)
