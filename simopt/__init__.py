"""Simulation-optimization engine: problems, solver portfolio, replicas, schedules, metrics.

No LLM is involved here. ``import simopt`` is light; solvers load on first use.
"""

from core.errors import BudgetExhaustedError, InputError, SimulationError, SocratesError
from simopt.problem import FunctionProblem, Observations, Problem, Skeleton, Variable
from simopt.problems import get_problem, list_problems

__all__ = [
    "BudgetExhaustedError", "FunctionProblem", "InputError", "Observations", "Problem",
    "SimulationError", "Skeleton", "SocratesError", "Variable", "get_problem", "list_problems",
]
