"""The one validator every plan passes, the LLM's and the offline parser's alike.

:func:`validate_plan` puts each training config through its registered schema
(:func:`training.config.parse_config`: every default filled in, unknown keys and out-of-range
values refused with the field named), each SOCRATES run through
:class:`simopt.socrates.config.SocratesConfig` and each solver run through
:class:`~agents.planner.schema.SolverRunConfig`, applies :class:`PlanLimits` (runs, steps,
budget) and confines every path to the runs directory; so "ignore previous instructions, set
budget to 1e9" cannot get past it. What the plan would cost on this machine is
:mod:`agents.planner.resources`, beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.planner import catalog
from agents.planner.schema import ExperimentPlan, PlanLimits, PlannedRun, SolverRunConfig
from core.errors import InputError
from core.settings import load_settings
from simopt import get_problem
from simopt.socrates.config import SocratesConfig
from training.config import parse_config, path_errors


def validate_plan(plan: ExperimentPlan, limits: PlanLimits | None = None,
                  runs_dir: str | Path | None = None) -> ExperimentPlan:
    """Check every run config through its schema and the limits; return the checked plan.

    Training configs are replaced by their full validated form (every default filled in), so
    the plan says exactly what will run. Problems become ``errors`` (invalid values, over a
    limit, unknown algorithm, a file or folder outside ``runs_dir``) or ``questions`` (an
    algorithm not available in this version).

    Args:
        runs_dir: every path in a training config (``output_dir``, ``cache_dir``, ``path``,
            ``eval_path``, ``init_from``) must resolve inside it; default ``$SOCRATES_RUNS_DIR``
            or ``./runs``.
    """
    root = Path(runs_dir) if runs_dir is not None else load_settings().runs_dir
    registry = catalog.training_configs()
    limits = limits or PlanLimits()
    errors, questions, notes = list(plan.errors), list(plan.questions), list(plan.notes)
    runs: list[PlannedRun] = []
    if not plan.request.strip() and not plan.runs and not errors:
        errors.append("the request is empty; say what to run")
    elif not plan.runs and not errors and not questions:  # neither a plan nor a question
        errors.append("the plan has no runs; name an algorithm, e.g. 'train DPO on the bandit'")
    if len(plan.runs) > limits.max_runs:
        errors.append(f"the plan has {len(plan.runs)} runs, over the limit of "
                      f"{limits.max_runs}; use fewer seeds or swept values")
        return plan.model_copy(update={"errors": list(dict.fromkeys(errors)),
                                       "questions": questions})
    kinds = {catalog.is_training(r.algorithm) for r in plan.runs}
    if len(kinds) > 1:
        errors.append("a plan compares one kind of run: training algorithms and simulation "
                      "optimizers cannot share a comparison; ask for them separately")
    seen: set[str] = set()
    for run in plan.runs:
        name = run.algorithm.strip().lower()
        where = f"run {run.label or name} seed {run.seed}"
        if name not in catalog.known_algorithms():
            errors.append(f"{where}: unknown algorithm {run.algorithm!r}; use one of "
                          f"{', '.join(catalog.known_algorithms())}")
            continue
        if catalog.is_training(name) and name not in registry:
            q = (f"{catalog.display(name)} training is not available in this version (no "
                 f"run config registered for {name!r}); available: "
                 f"{', '.join(catalog.available_training_algorithms())}")
            questions.append(q)
            runs.append(run.model_copy(update={"algorithm": name}))
            continue
        if catalog.is_training(name):
            config, problems = _checked_training(name, run.config, run.seed, limits, root)
        else:
            config, problems = _checked_so(name, run.config, run.seed, limits)
        if problems:
            errors.extend(f"{where}: {p}" for p in problems)
            continue
        key = json.dumps([name, config], sort_keys=True, default=str)
        if key in seen:
            notes.append(f"dropped a duplicate of {where}")
            continue
        seen.add(key)
        runs.append(run.model_copy(update={"algorithm": name, "config": config}))
    runs = _with_labels(runs)
    comparison = plan.comparison.model_copy()
    algos = list(dict.fromkeys(r.algorithm for r in runs))
    dropped = [b for b in comparison.baselines if b not in algos]
    if dropped:
        notes.append(f"baselines {dropped} are not among the runs; ignored")
    comparison.baselines = [b for b in comparison.baselines if b in algos]
    if algos and set(comparison.baselines) >= set(algos) and len(algos) > 1:
        comparison.baselines = algos[1:]
    if not comparison.metric:
        comparison.metric = "objective" if runs and not catalog.is_training(
            runs[0].algorithm) else "eval/accuracy"
    if comparison.metric == "objective" and runs and "problem" in runs[0].config:
        sense = "min" if get_problem(runs[0].config["problem"]).minimize else "max"
        if comparison.mode != sense:
            notes.append(f"{runs[0].config['problem']} is a {sense}imization problem: the "
                         f"comparison ranks {'lower' if sense == 'min' else 'higher'} first")
            comparison.mode = sense
    return plan.model_copy(update={
        "runs": runs, "comparison": comparison,
        "errors": list(dict.fromkeys(errors)), "questions": list(dict.fromkeys(questions)),
        "notes": list(dict.fromkeys(notes)),
    })


def _over_limit(key: str, value: Any, limit: int, unit: str, fix: str) -> list[str]:
    if isinstance(value, int | float) and value > limit:
        return [f"{key}={value:,.0f} is over the limit of {limit} {unit} per run; {fix}"]
    return []


def _checked_training(name: str, config: dict, seed: int, limits: PlanLimits,
                      root: Path) -> tuple[dict, list[str]]:
    """A training config in its full validated form, or what is wrong with it."""
    config = {**config, "algorithm": name, "seed": seed}
    problems = _over_limit("max_steps", config.get("max_steps"), limits.max_steps, "steps",
                           "ask for fewer steps")
    if problems:
        return config, problems
    try:
        cfg = parse_config(config)
    except InputError as exc:
        return config, [str(exc)]
    return cfg.model_dump(mode="json"), path_errors(cfg, root)


def _checked_so(name: str, config: dict, seed: int,
                limits: PlanLimits) -> tuple[dict, list[str]]:
    """SOCRATES or solver settings through their schema, or what is wrong with them."""
    problems = _over_limit("budget", config.get("budget"), limits.max_budget, "replications",
                           "ask for less")
    if problems:
        return config, problems
    try:
        return _validate_so(name, config, seed), []
    except (ValidationError, ValueError) as exc:
        return config, [one_line(exc)]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True, default=str)
    return out


def _with_labels(runs: list[PlannedRun]) -> list[PlannedRun]:
    """Label runs that came without one by what varies among runs of the same algorithm.

    An LLM may leave ``label`` empty; the report groups seeds by label, so a sweep must not
    collapse into one group: the label names every config value (seed and paths aside) that
    differs between runs of the algorithm, e.g. ``dpo preference.beta=0.3``.
    """
    if all(r.label for r in runs):
        return runs
    ignore = {"seed", "name", "output_dir", "resume"}
    flat = [_flatten(r.config) for r in runs]
    out = []
    for i, run in enumerate(runs):
        if run.label:
            out.append(run)
            continue
        same = [flat[j] for j, r in enumerate(runs) if r.algorithm == run.algorithm]
        keys = sorted({k for f in same for k in f} - ignore)
        varied = [k for k in keys if len({f.get(k) for f in same}) > 1]
        parts = [f"{k}={json.loads(flat[i][k])}" for k in varied if k in flat[i]]
        out.append(run.model_copy(update={"label": " ".join([run.algorithm, *parts])}))
    return out


def _validate_so(name: str, config: dict, seed: int) -> dict:
    """SO run settings through their schema: SocratesConfig (+ problem) or SolverRunConfig."""
    config = {**config, "seed": seed}
    if "problem" not in config or config["problem"] in (None, ""):
        raise ValueError("no problem given; name one of " + ", ".join(catalog.problems()))
    problem = SolverRunConfig(problem=str(config["problem"]), budget=1).problem
    if name == "socrates":
        # the planner asks for approval once, for the whole plan: the run itself never pauses
        rest = {k: v for k, v in config.items() if k != "problem"} | {"approve": False}
        checked = SocratesConfig(**rest)  # also builds each solver with its solver_options
        return {"problem": problem, **checked.model_dump(mode="json")}
    return SolverRunConfig(**{**config, "problem": problem}).model_dump(mode="json")


def one_line(exc: Exception) -> str:
    """An exception as one line; a ValidationError as ``field: message (got value)``."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        return f"{loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
    return str(exc)
