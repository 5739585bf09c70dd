"""``socrates ask "REQUEST" [--yes] [--dry-run] [--json]``: plan, approve, launch, compare.

The request goes to the planner (offline rules, or the LLM named by ``SOCRATES_LLM``); the
validated plan and its resource estimate are printed; ``--dry-run`` stops there. Without
``--yes`` the planner graph pauses for approval on the terminal (and refuses when stdin is not
a terminal). Runs stream their progress to stderr; the comparison table goes to stdout.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from agents.llm import models_by_role
from agents.planner import estimate_resources, run_key
from core.errors import InputError
from graphs.cli.common import console, console_err, parse_key_values, print_json
from graphs.settings import build_llm, load_settings


def ask(
    request: str = typer.Argument(..., help="What to run, in plain words."),
    yes: bool = typer.Option(False, "--yes", help="Skip the approval step."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    defaults: list[str] = typer.Option(
        None, "--default",
        help="Config value for every training run where the request is silent, e.g. "
        "--default max_steps=20 (repeatable; the request's own settings win).",
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Concurrent training runs (default: CPU cores)."
    ),
    llm_spec: str = typer.Option(None, "--llm", help="Model for the planner: offline or "
                                 "openai:MODEL (default: the SOCRATES_LLM setting)."),
    llm_roles: list[str] = typer.Option(
        None, "--llm-role", help="One role's model: ROLE=SPEC[,key=value...], e.g. "
        "planner=openai:small,base_url=http://127.0.0.1:8080/v1,temperature=0 (repeatable; "
        "over socrates.toml's [llm_roles.ROLE])."),
) -> None:
    """Turn a request into validated runs, ask for approval, launch and compare them."""
    # Imported here, not at the top: the planner graph brings langgraph and scipy.stats, +2.4 s
    # measured (python -X importtime) on every `socrates` command, not only on `ask`.
    from graphs.planner import plan as make_plan
    from graphs.planner import run_planner, sqlite_checkpointer
    from graphs.planner_state import PlannerContext

    if not request.strip():
        raise InputError("the request is empty; say what to run, e.g. socrates ask \"compare "
                         "MallowsPO with DPO on the dispersion bandit with 2 seeds\"")
    settings = load_settings()
    default_values = parse_key_values(defaults or [], "--default", "max_steps=20")
    # the settings' model, per-role models and timeouts, with --llm / --llm-role over them
    llm = build_llm(settings, llm=llm_spec, role_options=llm_roles or [])
    plan = make_plan(request, llm, max_workers=workers, defaults=default_values)
    estimate = estimate_resources(plan, workers) if plan.runs else None
    models = models_by_role(llm, ["planner"])
    if json_out and (dry_run or not plan.ok):
        print_json({"plan": plan, "estimate": estimate, "launched": False, "models": models})
    if not plan.ok:
        raise InputError(f"cannot run this request: {plan.problem_line()}")
    if not dry_run and not yes and not sys.stdin.isatty():
        raise InputError("not launching without approval: stdin is not a terminal; add --yes "
                         "to launch these runs (or --dry-run to see the plan)")
    if not json_out:
        _print_plan(plan, estimate)
        console.print(f"planner: {_answered_by(plan, models['planner'])}", markup=False,
                      soft_wrap=True)
    if dry_run:
        return

    keys = [run_key(i, r) for i, r in enumerate(plan.runs)]
    progress = _Progress(keys, plan, quiet=json_out)
    ctx = PlannerContext(llm=llm, approve=not yes, runs_dir=settings.runs_dir,
                         max_workers=workers, defaults=default_values, on_event=progress.event)

    def confirm(payload: dict) -> bool:
        return typer.confirm(f"Launch these {len(plan.runs)} runs?", default=False)

    checkpointer = sqlite_checkpointer(settings.runs_dir / "planner.sqlite")
    thread_id = f"ask-{time.time_ns()}"
    try:
        state = run_planner(plan_obj=plan, context=ctx, checkpointer=checkpointer,
                            thread_id=thread_id, on_interrupt=confirm)
    finally:
        progress.close()
    if state.get("refused"):
        if json_out:
            print_json({"plan": plan, "estimate": estimate, "launched": False,
                        "refused": state["refused"]})
        else:
            console.print(f"nothing launched: {state['refused']}", markup=False)
        return
    report = state["report"]
    _append_models(report["path"], plan, llm, models)
    if json_out:
        print_json({"plan": state["plan"], "estimate": state["estimate"], "launched": True,
                    "thread_id": thread_id, "plan_dir": state["plan_dir"],
                    "finished": state["finished"], "report": report, "models": models})
        return
    console.print(report["markdown"], markup=False, highlight=False, soft_wrap=True)
    for line in report["failures"]:
        console.print(f"failed: {line.removeprefix('- ')}", markup=False)
    if report["plot"]:
        console.print(f"plot: {report['plot']}", markup=False, soft_wrap=True)
    console.print(f"report: {report['path']}", markup=False, soft_wrap=True)


def _answered_by(plan: Any, asked: str) -> str:
    """Who wrote the plan: the offline parser, the model, or the parser after the model."""
    from agents.planner import FALLBACK_NOTE

    if asked == "offline":
        return "offline parser (rules)"
    if any(n.startswith(FALLBACK_NOTE) for n in plan.notes):
        return f"{asked} failed; the offline parser wrote this plan (see the note)"
    return asked


def _append_models(path: str, plan: Any, llm: Any, models: dict[str, str]) -> None:
    """Add which model answered the planner, and its fallback said once, to the report."""
    from agents.planner import FALLBACK_NOTE
    from agents.reporter import entries_from_calls, models_markdown

    fallbacks = {"planner": [n for n in plan.notes if n.startswith(FALLBACK_NOTE)]}
    section = models_markdown(models, entries_from_calls(getattr(llm, "call_log", [])),
                              fallbacks)
    with open(path, "a") as f:
        f.write("\n" + section)


def _print_plan(plan: Any, estimate: Any) -> None:
    table = Table(title=f"plan: {len(plan.runs)} runs")
    table.add_column("run", overflow="fold")
    for col in ("algorithm", "seed", "settings", "steps/budget"):
        table.add_column(col)
    for i, r in enumerate(plan.runs):
        settings = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "defaults"
        size = r.config.get("max_steps", r.config.get("budget", ""))
        table.add_row(run_key(i, r), r.algorithm, str(r.seed), settings, str(size))
    console.print(table)
    cmp = plan.comparison
    base = f"; baselines: {', '.join(cmp.baselines)}" if cmp.baselines else ""
    console.print(f"compare: {cmp.metric} ({'higher' if cmp.mode == 'max' else 'lower'} is "
                  f"better), mean ± 95% interval over seeds{base}", markup=False)
    for note in plan.notes:
        console.print(f"note: {note}", markup=False)
    if estimate is not None:
        console.print(f"estimate: {estimate.describe()}", markup=False)


class _Progress:
    """Progress of the runs on stderr: a bar per run on a terminal, a line per run otherwise."""

    def __init__(self, keys: list[str], plan: Any, quiet: bool):
        self.quiet = quiet
        self.bar = None
        if quiet or not console_err.is_terminal:
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), console=console_err)
        self.tasks = {}
        for key, run in zip(keys, plan.runs, strict=True):
            total = run.config.get("max_steps") or 1
            self.tasks[key] = self.bar.add_task(f"{run.label} seed {run.seed}", total=total)
        self.bar.start()

    def event(self, ev: dict) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            task = self.tasks.get(ev.get("key"))
            if task is None:
                return
            if ev.get("type") == "progress":
                self.bar.update(task, completed=ev.get("step") or 0)
            elif ev.get("type") == "finished":
                total = self.bar.tasks[task].total
                self.bar.update(task, completed=total,
                                description=f"{ev['label']} seed {ev['seed']}: {ev['status']}")
            return
        if ev.get("type") == "finished":
            metric = ev.get("metric")
            value = f" {metric:.4g}" if isinstance(metric, int | float) else ""
            err = f" ({ev['error']})" if ev.get("error") else ""
            console_err.print(f"{ev['key']}: {ev['status']}{value}{err}", markup=False,
                              highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
