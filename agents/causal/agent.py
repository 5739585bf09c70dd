"""Proposing skeletons: ask the LLM (or the offline policy), validate, repair, merge with data.

An LLM's answer passes :func:`~agents.causal.validate.validate_skeleton`; an invalid one is sent
back with the list of errors (at most ``max_repairs`` times), after which the offline policy
answers and the fallback is recorded in ``notes``. A valid LLM answer is then checked against
the data (:func:`merge_with_data`): a formula the data contradict is dropped (its edges kept),
and a stochastic node the data show to be an exact function of its parents gets that formula.

The records the skeleton covers are the problem's declared observables or, when it declared
none (``Problem.from_function`` without ``observables`` before any replication, or a fresh
problem object whose data were replayed from a journal), the records the data hold: so the
skeleton does not depend on whether the problem object was simulated before.
"""

from __future__ import annotations

import numpy as np

from agents.causal.discovery import data_columns, find_identity, usable
from agents.causal.offline import FORMULA_CHECK_TOL, offline_skeleton
from agents.causal.prompt import ROLE, repair_message, skeleton_prompt
from agents.causal.validate import validate_skeleton
from agents.llm import LLM, get_llm
from core.errors import InputError, LLMError
from simopt.problem import Problem
from simopt.replicas.expr import parse_formula
from simopt.replicas.skeleton import CausalSkeleton, Mechanism


def problem_observables(problem: Problem, cols: dict[str, np.ndarray] | None) -> list[str]:
    """The records a skeleton covers: declared ones, else those the data hold (in the data's
    order), never a decision or the objective."""
    declared = list(problem.observables)
    if declared or cols is None:
        return declared
    skip = {v.name for v in problem.variables} | {problem.objective_name, "objective"}
    return [k for k in cols if k not in skip]


def _context(problem: Problem, cols, observables: list[str], sample: int, seed: int) -> dict:
    return {
        "problem": problem.to_dict(),
        "description": problem.description,
        "variables": [v.name for v in problem.variables],
        "integer_variables": [v.name for v in problem.variables if v.integer],
        "observables": list(observables),
        "objective": problem.objective_name,
        "data": cols,
        "sample": sample,
        "seed": seed,
    }


def merge_with_data(skeleton: CausalSkeleton, cols: dict[str, np.ndarray] | None,
                    decisions: list[str]) -> CausalSkeleton:
    """An LLM skeleton checked against the data (module docstring); notes say what changed."""
    if cols is None:
        return skeleton
    nodes, notes = [], list(skeleton.notes)
    for node in skeleton.nodes:
        parents = skeleton.parents(node.name)
        formula = node.mechanism.formula if node.mechanism is not None else None
        observed = node.name in cols and all(p in cols for p in parents)
        if formula and observed:
            parsed = parse_formula(formula, parents)
            pred = parsed.evaluate({p: cols[p] for p in parsed.names})
            y = cols[node.name]
            err = float(np.var(y - pred)) if np.all(np.isfinite(pred)) else np.inf
            if not err <= FORMULA_CHECK_TOL * (float(np.var(y)) + 1e-12):
                notes.append(f"{node.name}: the formula {formula} does not reproduce the data: "
                             "dropped (its edges kept)")
                node = node.model_copy(update={"mechanism": Mechanism(type="stochastic")})
        elif (not formula and observed and parents and node.role not in ("decision",)
              and usable(cols[node.name])):
            found = find_identity(node.name, cols, parents, decisions)
            if found is not None:
                notes.append(f"{node.name} = {found[0]} (an exact identity on the data over its "
                             "parents)")
                node = node.model_copy(update={"mechanism": Mechanism(type="deterministic",
                                                                      formula=found[0])})
        nodes.append(node)
    return CausalSkeleton(nodes=nodes, edges=list(skeleton.edges), notes=notes)


def _ask_once(problem: Problem, llm: LLM, cols, observables: list[str], sample: int, seed: int,
              max_repairs: int) -> CausalSkeleton:
    messages = skeleton_prompt(problem, observables)
    context = _context(problem, cols, observables, sample, seed)
    errors: list[str] = []
    for attempt in range(max_repairs + 1):
        try:
            answer = llm.structured(messages, CausalSkeleton, role=ROLE, context=context)
        except LLMError as exc:
            errors = [f"the LLM gave no skeleton: {exc}"]
            break
        fixed, errors = validate_skeleton(answer, problem, observables)
        if not errors:
            if attempt:
                fixed.notes.append(f"valid after {attempt} repair(s)")
            if getattr(llm, "backend", None) != "offline":
                fixed = merge_with_data(fixed, cols, [v.name for v in problem.variables])
            return fixed
        messages = [
            *messages,
            {"role": "assistant", "content": answer.model_dump_json()},
            {"role": "user", "content": repair_message(errors)},
        ]
    fallback, more = validate_skeleton(offline_skeleton(context), problem, observables)
    if more:  # the offline policy is ours: an invalid answer is a bug, not a user mistake
        raise LLMError(f"offline causal skeleton for {problem.name} is invalid: {more}")
    fallback.notes.append(
        f"fallback to the offline policy after {len(errors)} unresolved error(s): "
        + "; ".join(errors[:5])
    )
    return fallback


def propose_skeletons(
    problem: Problem,
    llm: LLM | str | None = None,
    data=None,
    n_samples: int = 3,
    seed: int = 0,
    max_repairs: int = 2,
) -> list[CausalSkeleton]:
    """Several validated skeletons (multi-start); duplicates are dropped.

    Args:
        problem: the system (description, variables, observables, objective name).
        llm: the model (an ``LLM``, or a spec for ``get_llm`` such as ``"openai:MODEL"``);
            None uses the offline policy.
        data: optional real replications (``ReplicaData``, list of ``Observations`` or a dict
            of columns): identities, censoring and causal discovery (and the records to cover
            when the problem declares none).
        n_samples: skeletons to ask for (sample ``i`` of the offline policy runs its causal
            discovery on a bootstrap resample of the data when ``i > 0``).
        seed: seeds the offline policy's resampling.
        max_repairs: re-prompts with the validation errors before falling back.
    """
    if n_samples < 1:
        raise InputError(f"n_samples must be >= 1, got {n_samples}")
    llm = get_llm(llm)
    cols = data_columns(data, problem)
    observables = problem_observables(problem, cols)
    out: list[CausalSkeleton] = []
    seen: set[tuple] = set()
    for i in range(n_samples):
        sk = _ask_once(problem, llm, cols, observables, i, seed, max_repairs)
        key = (tuple(sorted(sk.edges)),
               tuple(sorted((n.name, n.mechanism.formula if n.mechanism else None)
                            for n in sk.nodes)))
        if key not in seen:
            seen.add(key)
            out.append(sk)
    return out


def propose_skeleton(
    problem: Problem, llm: LLM | str | None = None, data=None, n_samples: int = 1, seed: int = 0,
    max_repairs: int = 2,
) -> CausalSkeleton:
    """One validated skeleton for ``problem`` (the first of :func:`propose_skeletons`)."""
    return propose_skeletons(problem, llm, data, n_samples, seed, max_repairs)[0]


def offline_policy(messages, schema, context: dict) -> CausalSkeleton:
    """The offline answer for role ``causal_skeleton``: :func:`offline_skeleton` on ``context``."""
    return offline_skeleton(context)
