"""Error hierarchy shared by every layer of socrates-lab.

The command line catches :class:`SocratesError` at one boundary and prints its message as a
single line (exit code 2 for :class:`InputError`); everything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class SocratesError(Exception):
    """Base class of every error socrates-lab raises on purpose."""


class InputError(SocratesError, ValueError):
    """A user mistake: a bad option, file, config value or request. The message names the fix."""


class BudgetExhaustedError(SocratesError):
    """A solver asked for more replications than its budget allows (never silently truncated)."""


class SimulationError(SocratesError):
    """The system under optimization failed: it raised, timed out or returned a non-finite value.

    Attributes:
        problem: name of the problem.
        x: the design that was being simulated.
        replication: index of the replication that failed (or None when unknown).
        partial: the good replications of the failing call (``Observations``) or None.
        history: set by a solver's evaluator: every evaluation made before the failure.
        budget_used: set by the evaluator: replications charged, the good partial ones included.
        trajectory: set by ``Solver.run``: the trajectory up to the failure.
    """

    def __init__(self, message: str, *, problem: str = "", x=None, replication: int | None = None):
        super().__init__(message)
        self.problem = problem
        self.x = x
        self.replication = replication
        self.partial = None
        self.history = None
        self.budget_used: int | None = None
        self.trajectory = None


class LLMError(SocratesError):
    """An LLM backend could not be reached or never produced a valid answer (raised by
    :mod:`agents`; the engines never call an LLM)."""
