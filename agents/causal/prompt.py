"""The skeleton role's prompt and repair message (what an LLM is asked, and told to fix)."""

from __future__ import annotations

from collections.abc import Sequence

from agents.llm import system_user
from simopt.problem import Problem

ROLE = "causal_skeleton"


SYSTEM_PROMPT = """You are a simulation modeller. From a system's description you write its \
causal skeleton: a directed acyclic graph over the decision variables, the random inputs \
(exogenous, or latent when no replication records them), the intermediate quantities and the \
objective. An edge A -> B means B is computed from A within one replication.
Rules:
- Use the exact names given for decision variables, recorded quantities and the objective.
- Every decision variable and the objective must be nodes; nothing points into a decision.
- Mark a quantity observed=false when it is not recorded (e.g. demand seen only through sales).
- When the description states how a node is computed, give mechanism \
{"type": "deterministic", "formula": "..."} using only the node's parents, numbers, + - * / \
** (numeric exponent), comparisons, and min max abs exp log sqrt clip where. Otherwise you may \
give {"type": "stochastic", "family": "normal|lognormal|gamma|exponential|weibull|poisson"}.
Reply with one JSON object {"nodes": [{"name", "role", "kind", "observed", "mechanism"}], \
"edges": [[source, target], ...]} and nothing else."""


def skeleton_prompt(problem: Problem, observables: Sequence[str] | None = None) -> list[dict]:
    """System + user messages for ``problem``: description, variables, records, objective.

    ``observables`` overrides ``problem.observables`` (the records the data hold when the
    problem did not declare them)."""
    records = list(problem.observables if observables is None else observables)
    variables = ", ".join(
        f"{v.name} ({'integer' if v.integer else 'continuous'}, in [{v.lower}, {v.upper}])"
        for v in problem.variables
    )
    user = (
        f"System: {problem.name}\n\nDescription:\n{problem.description}\n\n"
        f"Decision variables: {variables}\n"
        f"Recorded per replication: {', '.join(records) or '(none)'}\n"
        f"Objective: {problem.objective_name} (to be "
        f"{'minimized' if problem.minimize else 'maximized'})\n\n"
        "Write the causal skeleton as JSON."
    )
    return system_user(SYSTEM_PROMPT, user)


def repair_message(errors: Sequence[str]) -> str:
    """The re-prompt after an invalid skeleton: exactly what to change."""
    listed = "\n".join(f"- {e}" for e in errors)
    return (
        "Your skeleton is invalid. Fix exactly these problems and keep everything else, then "
        f"reply with the whole corrected JSON object:\n{listed}"
    )
