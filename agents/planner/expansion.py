"""Expansion: a :class:`ParsedRequest` -> the runs of an :class:`ExperimentPlan`.

Runs are the cartesian product algorithms x swept values x seeds, deterministic. A plain
setting (``beta``, ``lr``, ``steps``, ``divergence``, ``task``, ...) lands on the field it maps
to in the algorithm's own registered schema (:func:`field_path`, breadth first), so a family's
new field is reachable by name. Defaults the request leaves open are written to ``notes``;
what cannot be planned becomes a question or an error, never a guess.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Literal

from pydantic import BaseModel

from agents.planner import catalog
from agents.planner.lexicon import SETTING_FIELDS
from agents.planner.parser import ParsedRequest
from agents.planner.schema import Comparison, ExperimentPlan, PlanLimits, PlannedRun
from simopt import get_problem
from training.config import apply_overrides

MAX_EXPANDED_RUNS = 10_000  # never materialize more runs than this, whatever the limits
_INT_SETTINGS = {"steps", "batch_size", "n_arms", "budget", "rounds", "macroreps"}
_TRAINING_SETTINGS = set(SETTING_FIELDS) - {"task"}
_SO_SETTINGS = {"budget", "rounds", "macroreps"}


def field_path(cls: type[BaseModel], name: str) -> tuple[str, ...] | None:
    """Dotted path of the field a plain setting ``name`` maps to in config class ``cls``.

    Breadth first over nested sections, so top-level ``max_steps`` wins over a deeper field;
    at equal depth the algorithm's own section comes before ``data``/``model``/``optimizer``.
    """
    wanted = SETTING_FIELDS.get(name, (name,))
    frontier: list[tuple[tuple[str, ...], type[BaseModel]]] = [((), cls)]
    while frontier:
        nxt: list[tuple[tuple[str, ...], type[BaseModel]]] = []
        for prefix, model in frontier:
            for fname, finfo in model.model_fields.items():
                if fname in wanted:
                    return (*prefix, fname)
                for sub in (finfo.annotation, *getattr(finfo.annotation, "__args__", ())):
                    if isinstance(sub, type) and issubclass(sub, BaseModel):
                        nxt.append(((*prefix, fname), sub))
        frontier = sorted(nxt, key=lambda p: p[0][-1] in ("data", "model", "optimizer"))
    return None


def _set_path(d: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        d = d.setdefault(part, {})
    d[path[-1]] = value


def _as_int(name: str, value: Any, parsed: ParsedRequest) -> Any:
    if name in _INT_SETTINGS and isinstance(value, float):
        if value.is_integer() and abs(value) < 2**62:
            return int(value)
        parsed.errors.append(f"{name} must be a whole number, got {value:g}")
    return value


def expand(parsed: ParsedRequest, request: str, defaults: dict[str, Any] | None = None
           ) -> ExperimentPlan:
    """Turn parsed pieces into runs: algorithms x swept values x seeds (deterministic).

    Args:
        parsed: the parser's reading.
        request: the original text (kept in the plan).
        defaults: dotted config keys applied to every training config before the request's own
            settings (e.g. ``{"max_steps": 20}``), for settings the request leaves open.
    """
    registry = catalog.training_configs()
    questions, errors, notes = list(parsed.questions), list(parsed.errors), list(parsed.notes)
    algos = list(parsed.algorithms)
    if errors and not algos:  # nothing to expand (e.g. an empty request)
        return ExperimentPlan(request=request, errors=list(dict.fromkeys(errors)))
    if not algos:
        if parsed.distill:
            questions.append("which distillation algorithm: OPD+ (unbiased), OPD "
                             "(stop-gradient) or GKD (full vocabulary)?")
        elif parsed.problems:
            algos = ["socrates"]
            notes.append("no algorithm named for the problem: planned SOCRATES")
        else:
            questions.append("which algorithm should run? known: "
                             f"{', '.join(catalog.known_algorithms())}")
    training = [a for a in algos if catalog.is_training(a)]
    so = [a for a in algos if not catalog.is_training(a)]
    if training and so:
        errors.append(f"a plan compares one kind of run: {', '.join(training)} train models "
                      f"while {', '.join(so)} optimize simulations; ask for them separately")
        so = []
    seeds = _seeds(parsed, errors, notes)
    params = {k: [_as_int(k, v, parsed) for v in vs] for k, vs in parsed.params.items()}
    size = len(algos) * len(seeds) * math.prod(len(v) for v in params.values()) * max(
        1, len(parsed.divergences)) * max(1, len(parsed.tasks)) * max(1, len(parsed.problems))
    if size > MAX_EXPANDED_RUNS:  # refuse before building them (a validator limit follows)
        errors.append(f"the request asks for about {size} runs; a plan may hold at most "
                      f"{PlanLimits().max_runs}: use fewer seeds or swept values")
        return ExperimentPlan(request=request, questions=list(dict.fromkeys(questions)),
                              errors=list(dict.fromkeys(errors)), notes=notes)
    errors += [e for e in parsed.errors if e not in errors]
    runs: list[PlannedRun] = []
    if training:
        for a in training:
            if a not in registry:
                questions.append(f"{catalog.display(a)} training is not available in this "
                                 f"version (no run config registered for {a!r}); available: "
                                 f"{', '.join(catalog.available_training_algorithms())}")
        extra = sorted(set(params) - _TRAINING_SETTINGS)
        for k in extra:
            questions.append(f"{k} is a simulation-optimization setting; training runs take "
                             f"steps, lr, beta, batch size, seeds")
        tasks = parsed.tasks or [None]
        if parsed.problems:
            errors.append(f"{', '.join(parsed.problems)} is a simulation problem, not a training "
                          f"task; training tasks are {', '.join(catalog.tasks())}")
        swept = {k: v for k, v in params.items() if k in _TRAINING_SETTINGS}
        if parsed.divergences:
            swept["divergence"] = list(parsed.divergences)
        if len(tasks) > 1:
            swept["task"] = list(tasks)
        elif tasks[0] is not None:
            swept["task"] = tasks
        else:
            notes.append("no task named: each algorithm's default data (see its config)")
        for k in list(swept):
            if not any(_maps(a, k, registry) for a in training):
                questions.append(f"none of {', '.join(training)} has a {k!r} setting")
                swept.pop(k)
        for a in training:
            cls = registry.get(a)
            keys = [k for k in swept if cls is None or _maps(a, k, registry)]
            for combo in itertools.product(*(swept[k] for k in keys)):
                chosen = dict(zip(keys, combo, strict=True))
                label = _label(a, chosen, {k for k in keys if len(swept[k]) > 1})
                for seed in seeds:
                    config = apply_overrides({"algorithm": a}, [
                        f"{k}={json.dumps(v)}" for k, v in (defaults or {}).items()
                    ]) if defaults else {"algorithm": a}
                    config["seed"] = seed
                    for k, v in chosen.items():
                        path = field_path(cls, k) if cls is not None else None
                        if path is not None:
                            _set_path(config, path, v)
                    has_model = cls is not None and "model" in cls.model_fields
                    if has_model and parsed.models:
                        _set_path(config, ("model", "name"), parsed.models[0])
                    elif has_model and chosen.get("task") == "bandit":
                        _set_path(config, ("model", "name"), "tabular")
                    runs.append(PlannedRun(algorithm=a, seed=seed, config=config,
                                           params=dict(chosen), label=label))
    elif so:
        problems = parsed.problems
        if not problems:
            questions.append(f"which problem should {', '.join(so)} optimize? built-in: "
                             f"{', '.join(catalog.problems())}")
        budgets = params.get("budget")
        if not budgets:
            budgets = [1000]
            notes.append("no budget given: 1000 replications per run (the SimOpt default)")
        other = sorted(set(params) - _SO_SETTINGS)
        for k in other:
            questions.append(f"{k} is a training setting; simulation-optimization runs take a "
                             f"budget, seeds and (SOCRATES) rounds or macroreps")
        if parsed.tasks:
            errors.append(f"{', '.join(parsed.tasks)} is a training task, not a simulation "
                          f"problem; problems are {', '.join(catalog.problems())}")
        for a in so:
            keys = ["problem", "budget"] + [k for k in ("rounds", "macroreps")
                                            if k in params and a == "socrates"]
            values = {"problem": problems or [None], "budget": budgets,
                      **{k: params[k] for k in keys[2:]}}
            for combo in itertools.product(*(values[k] for k in keys)):
                chosen = dict(zip(keys, combo, strict=True))
                varied = {k for k in keys if len(values[k]) > 1}
                label = _label(a, chosen, varied)
                for seed in seeds:
                    config = {k: v for k, v in chosen.items() if v is not None}
                    config["seed"] = seed
                    runs.append(PlannedRun(algorithm=a, seed=seed, config=config,
                                           params={k: v for k, v in chosen.items()
                                                   if v is not None}, label=label))
    metric, mode = _metric(parsed, training, so, parsed.problems)
    baselines = [b for b in parsed.baselines if b in training or b in so]
    return ExperimentPlan(request=request, runs=runs,
                          comparison=Comparison(metric=metric, mode=mode, baselines=baselines),
                          questions=list(dict.fromkeys(questions)),
                          errors=list(dict.fromkeys(errors)), notes=list(dict.fromkeys(notes)))


def _maps(algorithm: str, name: str, configs: dict) -> bool:
    cls = configs.get(algorithm)
    if cls is None:  # not registered: keep what the request says, the question covers it
        return True
    return field_path(cls, name) is not None


def _label(algorithm: str, chosen: dict[str, Any], varied: set[str]) -> str:
    parts = [algorithm] + [f"{k}={chosen[k]}" for k in chosen if k in varied]
    return " ".join(parts)


def _seeds(parsed: ParsedRequest, errors: list[str], notes: list[str]) -> list[int]:
    if parsed.seeds is not None:
        bad = [s for s in parsed.seeds if not float(s).is_integer() or s < 0]
        if bad:
            errors.append(f"seeds must be whole numbers >= 0, got {bad}")
            return [0]
        return list(dict.fromkeys(int(s) for s in parsed.seeds))
    if parsed.n_seeds is not None:
        n = parsed.n_seeds
        if not float(n).is_integer() or n < 1:
            errors.append(f"the number of seeds must be a whole number >= 1, got {n:g}")
            return [0]
        if n > 1000:
            errors.append(f"{int(n)} seeds is more than any plan may launch; use at most 100")
            return [0]
        return list(range(int(n)))
    notes.append("no seeds given: one seed (0) per configuration, so no interval over seeds")
    return [0]


def _metric(parsed: ParsedRequest, training: list[str], so: list[str],
            problems: list[str]) -> tuple[str, Literal["max", "min"]]:
    if so:
        if len(problems) > 1:  # objectives differ in scale and sense: SimOpt's gap does not
            return "gap", "min"
        sense = "max"
        if problems:
            sense = "min" if get_problem(problems[0]).minimize else "max"
        return "objective", sense  # type: ignore[return-value]
    registry = catalog.training_configs()  # the preference family reports reward accuracy
    preference = all("preference" in getattr(registry.get(a), "model_fields", {})
                     for a in training)
    if parsed.metric == "loss":
        return "loss/total", "min"
    if parsed.metric == "kendall":
        return "eval/kendall_tau_min", "max"
    if preference:
        return "eval/reward_accuracy", "max"
    return "eval/accuracy", "max"
