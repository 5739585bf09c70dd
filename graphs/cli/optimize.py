"""``socrates optimize --problem NAME|--problem-file F.py:factory [--budget N] [--seed S]``
runs SOCRATES; ``socrates optimize --resume RUN_DIR`` continues a killed SOCRATES run;
``socrates optimize --problem NAME --solver NAME ...`` (or ``--method solver``) runs one solver.

A SOCRATES run folder (``runs/socrates-<problem>-s<seed>-<timestamp>/``) holds the journal of
every real replication, the graph's checkpoint, ``cli.json`` (how the run was started),
``status.json`` and the report. One solver runs with a progress bar, its recommendations are
evaluated by independent post-replications (SimOpt's metrics) and its folder is saved under the
runs directory (``./runs`` or ``$SOCRATES_RUNS_DIR``)::

    runs/optimize-<problem>-<solver>-s<seed>-<timestamp>/
        config.json       problem, solver, budget, seed, options
        trajectory.json   every recommendation (budget used, x, the solver's own estimate)
        history.json      every design evaluated (replications, mean, M2)
        metrics.json      post-replicated estimates, normalized-gap curve, AUC, solve time
        progress.png      the progress curve
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from core.errors import InputError
from graphs.cli.common import console, console_err, parse_key_values, print_json
from simopt.metrics import DEFAULT_POSTREPS, POSTREP_SEED, score_design

N_POSTREPS = DEFAULT_POSTREPS  # the run scorer's defaults (simopt.metrics)


def _runs_dir() -> Path:
    from graphs.settings import load_settings

    return Path(load_settings().runs_dir)


def _or_list(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``; "no other solver" when empty."""
    if not names:
        return "no other solver"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def make_solver(solver_name: str, options: dict | None = None):
    """``simopt.solvers.get(solver_name, **options)``, with an option the solver does not
    take named in one :class:`InputError` together with the options it does take."""
    import inspect

    from simopt import solvers

    cls = solvers.solver_class(solver_name)
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if n != "self" and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options or {}) - set(accepted))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise InputError(f"{solver_name} has no option {', '.join(map(repr, unknown))}; its "
                         f"options: {', '.join(accepted) or 'none'}")
    return cls(**(options or {}))


def run_optimize(
    problem_name: str, solver_name: str, budget: int | None, seed: int, progress: bool,
    runs_dir: Path | None = None, options: dict | None = None,
) -> dict:
    """Run, evaluate, save; return the summary written to ``metrics.json`` plus the folder."""
    import numpy as np

    from graphs.socrates import load_problem
    from simopt import metrics, solvers

    problem = load_problem(problem_name)
    solver = make_solver(solver_name, options)
    budget = problem.default_budget if budget is None else int(budget)
    if budget < 1:
        raise InputError(f"--budget must be >= 1 replication, got {budget}")
    if not solvers.solver_can_move(solver, problem):
        kinds = "integer" if problem.integer_mask.any() else "continuous"
        console_err.print(f"note: {solver_name} is not made for {problem.name}'s {kinds} "
                          "variables and may not move from x0; SOCRATES (the default method) "
                          "only gives budget to solvers that can", markup=False)
    elif problem.integer_mask.any() and getattr(solver, "integer_by_rounding", False):
        native = [n for n in solvers.names() if n != solver_name
                  and solvers.solver_can_move(n, problem)
                  and not solvers.solver_class(n).integer_by_rounding]
        console_err.print(f"note: {solver_name} treats {problem.name}'s integer variables by "
                          f"rounding; {_or_list(native)} move on the integer lattice "
                          "itself", markup=False)
    t0 = time.perf_counter()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console_err, transient=True,
        ) as bar:
            task = bar.add_task(f"{solver_name} on {problem.name}", total=budget)
            traj = solver.run(problem, budget, seed=seed,
                              on_evaluate=lambda x, v, used: bar.update(task, completed=used))
    else:
        traj = solver.run(problem, budget, seed=seed)
    wall = time.perf_counter() - t0

    # independent post-replications (never the solver's own estimates), CRN across designs
    f_x0 = problem.simulate(problem.x0, N_POSTREPS, seed=POSTREP_SEED).mean
    est = metrics.post_replicate(problem, traj, N_POSTREPS, POSTREP_SEED)
    summary: dict = {
        "problem": problem.name, "solver": solver_name, "budget": budget, "seed": seed,
        "budget_used": traj.budget_used, "wall_s": round(wall, 3),
        "best_x": traj.best_x.tolist(), "solver_estimate": traj.best_estimate,
        "post_estimate": float(est[-1]), "f_x0": float(f_x0), "n_postreps": N_POSTREPS,
    }
    curve = grid = None
    if problem.known_optimum is not None:
        f_star = float(problem.known_optimum[1])
        try:
            grid, curve = metrics.progress_curve(traj, est, f_x0, f_star, problem.minimize)
        except InputError:  # f(x0) estimated no worse than f*: the gap is undefined
            grid = curve = None
        if curve is not None:
            summary.update(
                f_star=f_star, terminal_gap=metrics.terminal_gap(curve),
                auc=metrics.area_under_curve(curve, grid),
                solve_time_0_1=metrics.solve_time(curve, grid, alpha=0.1),
            )

    folder = (runs_dir or _runs_dir()) / (
        f"optimize-{problem.name.replace('/', '_')}-{solver_name}-s{seed}-"
        f"{time.strftime('%Y%m%d-%H%M%S')}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"problem": problem.name, "solver": solver_name, "budget": budget, "seed": seed,
         "options": solver.options}, indent=2, default=str))
    (folder / "trajectory.json").write_text(json.dumps(traj.to_json(), indent=2))
    (folder / "history.json").write_text(json.dumps(traj.history.to_json()))
    summary["estimates"] = est.tolist()
    if curve is not None:
        summary["grid"], summary["curve"] = grid.tolist(), curve.tolist()
        common = metrics.DEFAULT_GRID
        metrics.plot_progress_curves(
            {solver_name: metrics.curve_on_grid(curve, grid, common)[None, :]},
            folder / "progress.png", grid=common, title=f"{problem.name}: {solver_name}",
        )
    else:  # no reference optimum: plot the post-replicated objective itself
        from simopt.metrics import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        b = np.array([p[0] for p in traj.points], float) / budget
        ax.step(np.append(b, 1.0), np.append(est, est[-1]), where="post")
        ax.set_xlabel("fraction of budget")
        ax.set_ylabel("objective (post-replicated)")
        fig.savefig(folder / "progress.png", dpi=110)
        plt.close(fig)
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2, default=float))
    summary["run_dir"] = str(folder)
    return summary


CLI_CONFIG = "cli.json"  # how the run was started, for --resume
STATUS = "status.json"  # {"status": "running" | "finished"}


def _status(folder: Path) -> str | None:
    try:
        return json.loads((folder / STATUS).read_text()).get("status")
    except (OSError, ValueError):
        return None


def unfinished_runs(runs_dir: Path, problem_name: str, seed: int) -> list[Path]:
    """Run folders of ``problem_name`` with ``seed`` that were started and never finished."""
    prefix = f"socrates-{problem_name.replace('/', '_')}-s{seed}-"
    if not runs_dir.is_dir():
        return []
    return sorted(f for f in runs_dir.iterdir()
                  if f.is_dir() and f.name.startswith(prefix) and _status(f) == "running")


def run_socrates_cli(
    problem_spec: str, budget: int | None, seed: int, progress: bool, llm: str | None,
    approve: bool, rounds: int, runs_dir: Path | None = None, resume: Path | None = None,
    llm_roles: list[str] | None = None,
) -> dict:
    """SOCRATES on a problem with progress bars; returns the summary (and writes the folder).

    Every run folder holds ``cli.json`` (how it was started), ``status.json`` and a LangGraph
    checkpoint (``checkpoints.sqlite``) beside the journal, so ``resume=FOLDER`` continues a
    killed run: the graph restarts at its last finished node and every real replication already
    paid for is replayed from the journal, so nothing is simulated twice and the result equals
    an uninterrupted run with the same seed.
    """
    from agents.llm import models_by_role
    from agents.reporter import SOCRATES_ROLES
    from graphs.checkpointing import sqlite_checkpointer
    from graphs.settings import build_llm, load_settings
    from graphs.socrates import load_problem, run_socrates

    settings = load_settings()
    if resume is not None:
        folder = Path(resume)
        try:
            started = json.loads((folder / CLI_CONFIG).read_text())
        except (OSError, ValueError):
            raise InputError(f"{folder} is not a SOCRATES run folder (no readable {CLI_CONFIG}); "
                             "give the folder a `socrates optimize` run printed") from None
        if _status(folder) == "finished":
            raise InputError(f"the run in {folder} has finished: see {folder}/report.md")
        problem_spec, budget, seed = started["problem"], started["budget"], started["seed"]
        llm, approve, rounds = started["llm"], started["approve"], started["rounds"]
        llm_roles = started.get("llm_roles") or []
        problem = load_problem(problem_spec)
    else:
        problem = load_problem(problem_spec)
        budget = problem.default_budget // 5 if budget is None else int(budget)
        base = runs_dir or _runs_dir()
        for old in unfinished_runs(base, problem.name, seed):
            console_err.print(f"note: an earlier run of {problem.name} with seed {seed} did not "
                              f"finish; continue it with `socrates optimize --resume {old}`",
                              markup=False, highlight=False)
        stem = f"socrates-{problem.name.replace('/', '_')}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder, i = base / stem, 1
        while folder.exists():  # two runs started in the same second get their own folders
            i += 1
            folder = base / f"{stem}-{i}"
        folder.mkdir(parents=True)
        spec = problem_spec
        if ":" in spec and spec.split(":", 1)[0].endswith(".py"):  # resumable from anywhere
            path, factory = spec.split(":", 1)
            spec = f"{Path(path).resolve()}:{factory}"
        (folder / CLI_CONFIG).write_text(json.dumps(
            {"problem": spec, "budget": budget, "seed": seed, "llm": llm,
             "llm_roles": list(llm_roles or []), "approve": approve, "rounds": rounds},
            indent=2))
    # the settings' model and per-role models, with --llm / --llm-role over them; a resumed
    # run uses the options it was started with (its LLM journal replays what was answered)
    backend = build_llm(settings, llm=llm, role_options=llm_roles or [])
    (folder / STATUS).write_text(json.dumps({"status": "running"}))

    def ask(request: dict) -> bool:
        console.print(f"schedule: {request['schedule']} for {request['budget']} real "
                      "replications", markup=False)
        return typer.confirm("Run it on the real system?", default=True)

    t0 = time.perf_counter()
    kwargs = dict(seed=seed, run_dir=folder, approve=approve, rounds=rounds,
                  approve_fn=ask, llm=backend,
                  checkpointer=sqlite_checkpointer(folder / "checkpoints.sqlite"),
                  thread_id="cli")
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console_err, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def on_event(ev: dict) -> None:
                if ev.get("stage") == "execute":
                    bar.update(task, description="executing on the real system",
                               completed=ev["used"], total=ev["total"])
                else:
                    bar.update(task, description=ev.get("stage", "").replace("_", " "),
                               total=None)

            res = run_socrates(problem, budget, on_event=on_event, **kwargs)
    else:
        res = run_socrates(problem, budget, **kwargs)
    (folder / STATUS).write_text(json.dumps({"status": "finished"}))
    summary: dict = {
        "problem": problem.name, "method": "socrates", "budget": budget, "seed": seed,
        "wall_s": round(time.perf_counter() - t0, 2), "run_dir": str(folder),
        "status": res.state.get("result", {}).get("status"),
        "schedule": res.schedule.describe() if res.schedule else None,
        "replans": res.replans, "budget_used": res.budget_used,
        "models": models_by_role(backend, list(SOCRATES_ROLES)),
    }
    if res.best_x is not None:
        scores = score_design(problem, res.best_x, N_POSTREPS, POSTREP_SEED)
        summary.update(best_x=res.best_x.tolist(), estimate=res.best_estimate,
                       estimate_ci=list(res.estimate_ci) if res.estimate_ci else None,
                       estimate_reps=res.estimate_reps, estimate_fresh=res.estimate_fresh,
                       estimate_text=res.describe_estimate(), post_estimate=scores["objective"])
        if problem.known_optimum is not None:
            summary["f_star"] = float(problem.known_optimum[1])
            if "gap" in scores:
                summary["terminal_gap"] = scores["gap"]
    return summary


def optimize(
    problem: str = typer.Option(None, "--problem", help="Built-in problem name (socrates "
                                "problems list)."),
    problem_file: str = typer.Option(None, "--problem-file", help="Your own system: "
                                     "path/to/file.py:factory returning a simopt.Problem."),
    method: str = typer.Option(None, "--method", help="'socrates' (the full pipeline, the "
                               "default) or 'solver' (one solver, see --solver; implied by "
                               "--solver)."),
    resume: Path = typer.Option(None, "--resume", help="Continue a killed SOCRATES run from its "
                                "folder (journal + checkpoint): nothing paid for is simulated "
                                "again."),
    llm: str = typer.Option(None, "--llm", help="LLM for SOCRATES: offline or openai:MODEL "
                            "(default: the SOCRATES_LLM setting)."),
    llm_roles: list[str] = typer.Option(
        None, "--llm-role", help="One role's model: ROLE=SPEC[,key=value...], e.g. "
        "causal_skeleton=openai:big,base_url=http://gpu:8000/v1,temperature=0.2 (repeatable; "
        "roles causal_skeleton, meta_optimizer, reporter; over socrates.toml's "
        "[llm_roles.ROLE])."),
    approve: bool = typer.Option(False, "--approve", help="SOCRATES: ask before running the "
                                 "schedule on the real system."),
    rounds: int = typer.Option(4, "--rounds", min=1, max=20, help="SOCRATES: meta-optimizer "
                               "rounds."),
    solver: str = typer.Option(None, "--solver", help="One solver instead of SOCRATES "
                               "(default gp_bo with --method solver): random_search, gp_bo, "
                               "spsa, nelder_mead, cmaes, trust_region, ranking_selection, "
                               "integer_local_search."),
    budget: int = typer.Option(None, "--budget", help="Replications of the system "
                               "(default: the problem's default budget)."),
    solver_options: list[str] = typer.Option(
        None, "--solver-option", help="One option of --solver as KEY=VALUE, e.g. reps=10 or "
        "trust_region=null for gp_bo (repeatable; values read as YAML; the solvers' "
        "docstrings list their options)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the solver and its CRN streams."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Optimize a problem with SOCRATES (or one solver) and save the run folder."""
    if resume is not None:
        if (problem is not None or problem_file is not None or solver is not None
                or llm is not None or llm_roles):
            raise InputError("--resume RUN_DIR continues a run as it was started: give no "
                             "--problem, --problem-file, --solver, --llm or --llm-role with it")
        method = "socrates"
    elif (problem is None) == (problem_file is None):
        raise InputError("give exactly one of --problem NAME or --problem-file FILE.py:factory")
    if method is None:
        method = "solver" if solver is not None else "socrates"
    if method == "solver" and solver is None:
        solver = "gp_bo"
    if method not in ("solver", "socrates"):
        raise InputError(f"--method must be 'solver' or 'socrates', got {method!r}")
    if solver_options and method != "solver":
        raise InputError("--solver-option sets an option of the one solver of --method solver "
                         "(give --solver NAME); SOCRATES chooses its solvers' options itself")
    options = parse_key_values(solver_options or [], "--solver-option", "reps=10")
    if budget is not None and budget < 10 and method == "socrates":
        raise InputError(f"--budget {budget} is too small for SOCRATES: give at least 10")
    if method == "socrates":
        summary = run_socrates_cli(problem or problem_file, budget, seed,
                                   progress and not json_out, llm, approve, rounds,
                                   resume=resume, llm_roles=llm_roles)
        if json_out:
            print_json(summary)
            return
        console.print(f"schedule: {summary['schedule']}", markup=False)
        for rp in summary["replans"]:
            console.print(f"re-plan at {rp['budget']}: {rp['reason']} -> {rp['new']}",
                          markup=False)
        if summary.get("best_x") is not None:
            console.print(f"recommended x = {[round(v, 6) for v in summary['best_x']]}; "
                          f"estimate {summary['estimate_text']}", markup=False)
            console.print(f"check by {N_POSTREPS} independent post-replications: "
                          f"{summary['post_estimate']:.6g}", markup=False)
            if "terminal_gap" in summary:
                console.print(f"known optimum {summary['f_star']:.6g}; normalized gap "
                              f"{summary['terminal_gap']:.4f}", markup=False)
        else:
            console.print(f"status: {summary['status']} (nothing run on the real system)")
        if any(m != "offline" for m in summary["models"].values()):
            console.print("models: " + ", ".join(f"{r}={m}" for r, m in
                                                 summary["models"].items())
                          + " (who answered each call: report.md)", markup=False,
                          soft_wrap=True)
        console.print(f"run folder: {summary['run_dir']} ({summary['wall_s']} s)",
                      markup=False, highlight=False)
        return
    summary = run_optimize(problem or problem_file, solver, budget, seed, progress and not json_out,
                           options=options)
    if json_out:
        print_json({k: v for k, v in summary.items() if k not in ("grid", "curve", "estimates")})
        return
    from rich.table import Table

    table = Table(title=f"{summary['solver']} on {summary['problem']} "
                        f"({summary['budget_used']}/{summary['budget']} replications)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("recommended x", ", ".join(f"{v:.6g}" for v in summary["best_x"]))
    table.add_row("solver's estimate", f"{summary['solver_estimate']:.6g}")
    table.add_row(f"post-replicated f ({N_POSTREPS} reps)", f"{summary['post_estimate']:.6g}")
    table.add_row("f(x0) post-replicated", f"{summary['f_x0']:.6g}")
    if "terminal_gap" in summary:
        table.add_row("known optimum f*", f"{summary['f_star']:.6g}")
        table.add_row("normalized gap at the end", f"{summary['terminal_gap']:.4f}")
        table.add_row("area under the progress curve", f"{summary['auc']:.4f}")
        table.add_row("0.1-solve time (budget fraction)", f"{summary['solve_time_0_1']:.3g}")
    table.add_row("wall time (s)", f"{summary['wall_s']:.2f}")
    console.print(table)
    console.print(f"run folder: {summary['run_dir']}", markup=False, highlight=False)
