"""Stage 2a: racing the portfolio on the replicas.

Every solver that can move on the problem's variables (:func:`capable`) runs on every replica
for ``macroreps`` macro-replications from the execution's start, with common random numbers
across solvers; recommended designs are post-replicated on the replica and turned into
normalized gap curves (``simopt.portfolio.evaluate_portfolio``).
"""

from __future__ import annotations

from collections.abc import Sequence

from simopt import solvers
from simopt.problem import Problem


def capable(name: str, problem: Problem) -> bool:
    """Whether solver ``name`` can move on ``problem``'s variables
    (:func:`simopt.solvers.solver_can_move`: the solvers' declarations, and lattice methods on
    wide continuous ranges)."""
    return solvers.solver_can_move(name, problem)


def capable_solvers(names: Sequence[str], problem: Problem) -> list[str]:
    """The solvers of ``names`` that :func:`capable` allows, in order."""
    return [n for n in names if capable(n, problem)]


def race(replicas, weights, names, budget, x0, macroreps, seed, n_postreps, n_jobs, executor,
         options, warm=None):
    """The portfolio summary on the replicas (``simopt.portfolio.PortfolioSummary``);
    ``warm``: per replica, the data history solvers that reuse one start with
    (:func:`simopt.socrates.data.replica_data_histories`)."""
    from simopt.portfolio import evaluate_portfolio

    return evaluate_portfolio(
        replicas, weights, list(names), budget, x0=x0, macroreps=macroreps, seed=seed,
        n_postreps=n_postreps, n_jobs=n_jobs, executor=executor, options=options, warm=warm,
    )
