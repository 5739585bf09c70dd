"""Stage 2a: racing the portfolio on the replicas.

Every solver that can move on the problem's variables (:func:`capable`) runs on every replica
for ``macroreps`` macro-replications from the execution's start, with common random numbers
across solvers; recommended designs are post-replicated on the replica and turned into
normalized gap curves (``simopt.portfolio.evaluate_portfolio``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simopt import solvers
from simopt.problem import Problem

LATTICE_SPAN = 50.0  # unit steps a continuous range must hold for a lattice method to move


def capable(name: str, problem: Problem) -> bool:
    """Whether solver ``name`` can move on ``problem``'s variables.

    The solvers' own declarations decide (``simopt.solvers.solver_supports``), with one
    exception: a lattice method (``supports_continuous = False``, e.g. integer local search)
    moves by unit steps, and on continuous variables whose ranges each span at least
    ``LATTICE_SPAN`` units (order quantities, reorder levels) the unit lattice is a grid of at
    most 2% of the range, fine enough to optimize on; on narrower continuous ranges it could
    not move at all and gets no budget.
    """
    fn = getattr(solvers, "solver_supports", None)
    if fn is not None:
        if fn(name, problem):
            return True
        cls = solvers.solver_class(name)
        cont = ~problem.integer_mask
        if getattr(cls, "supports_continuous", True) or not cont.any():
            return False
        span = (problem.upper - problem.lower)[cont]
        return bool(np.all(np.isfinite(span) & (span >= LATTICE_SPAN)))
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
