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
    """Whether solver ``name`` can move on ``problem``'s variables.

    Pure-integer solvers (``supports_continuous = False``) get nothing on a problem with a
    continuous variable, and solvers without integer support nothing on an integer one
    (the solvers' own ``solver_supports`` decides when it exists).
    """
    fn = getattr(solvers, "solver_supports", None)
    if fn is not None:
        return bool(fn(name, problem))
    cls = solvers.solver_class(name)
    mask = problem.integer_mask
    if mask.any() and not getattr(cls, "supports_integer", True):
        return False
    if (~mask).any() and not getattr(cls, "supports_continuous", name != "integer_local_search"):
        return False
    return True


def capable_solvers(names: Sequence[str], problem: Problem) -> list[str]:
    """The solvers of ``names`` that :func:`capable` allows, in order."""
    return [n for n in names if capable(n, problem)]


def race(replicas, weights, names, budget, x0, macroreps, seed, n_postreps, n_jobs, executor,
         options):
    """The portfolio summary on the replicas (``simopt.portfolio.PortfolioSummary``)."""
    from simopt.portfolio import evaluate_portfolio

    return evaluate_portfolio(
        replicas, weights, list(names), budget, x0=x0, macroreps=macroreps, seed=seed,
        n_postreps=n_postreps, n_jobs=n_jobs, executor=executor, options=options,
    )
