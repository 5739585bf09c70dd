"""Every solver of the portfolio on every built-in problem: SimOpt-style progress metrics.

For each problem, solver, budget level (default budget x fraction) and macro-replication ``m``:
run the solver from the problem's ``x0`` with seed ``m`` (the same seeds for every solver, so
solvers face paired randomness), post-replicate every recommended design ``n_postreps`` times
with one fixed common-random-numbers seed (never the solver's own estimates), and compute the
normalized gap curve ``(f(x_t) - f*) / (f(x0) - f*)`` against the reference optimum ``f*`` of
``docs PROBLEMS.md`` (``problem.known_optimum``). Reported per cell, with percentile bootstrap
intervals over macro-replications: mean terminal gap, mean area under the curve, the fraction
of runs that 0.1-solve the problem, and the mean wall time of one run.

    python bench/simopt_portfolio.py                          # everything, 5 macro-reps
    python bench/simopt_portfolio.py --problems EXAMPLE-1,MM1-1 --macroreps 3
    python bench/simopt_portfolio.py --budget-fraction 0.2 --solvers spsa,cmaes

Jobs run on ``--n-jobs`` processes (joblib, default 2); each job's seeds are fixed in advance,
so the numbers do not depend on scheduling. A solver runs only on problems it can move on
(``simopt.solvers.solver_can_move``, the rule SOCRATES's race uses too: its declared variable
types, and lattice methods on wide continuous ranges); the others are listed as not run. With
``--time-limit`` no job starts after that many seconds; every (problem, budget) cell is then
summarized over the macro-replications that all of its solvers completed (the same seeds for
each, so comparisons stay paired), and the report states the M reached. Results, the git
commit, the exact command, the date and environment facts go to
``bench/results/simopt_portfolio.md``, with one progress-curve PNG per problem and budget and
one solvability-profile PNG per budget fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from simopt import get_problem, list_problems, metrics, solvers  # noqa: E402
from simopt.solvers.base import Trajectory  # noqa: E402

POSTREP_SEED = 424_242
ALPHA = 0.1


def run_job(problem_name: str, solver_name: str, budget: int, seed: int, n_postreps: int) -> dict:
    """One macro-replication: run, post-replicate, return the curve's ingredients."""
    import torch

    torch.set_num_threads(1)  # two worker processes on two cores: no oversubscription
    problem = get_problem(problem_name)
    t0 = time.perf_counter()
    traj = solvers.get(solver_name).run(problem, budget, seed=seed)
    wall = time.perf_counter() - t0
    est = metrics.post_replicate(problem, traj, n_postreps, POSTREP_SEED)
    return {
        "problem": problem_name, "solver": solver_name, "budget": budget, "seed": seed,
        "wall_s": wall, "trajectory": traj.to_json(), "estimates": est.tolist(),
        "budget_used": traj.budget_used,
    }


def summarize(results: list[dict], f_x0: dict, n_boot: int) -> list[dict]:
    """One row per (problem, budget, solver) with bootstrap intervals."""
    rows = []
    keys = sorted({(r["problem"], r["budget"], r["solver"]) for r in results})
    seeds_of: dict[tuple, set] = {}
    for r in results:
        seeds_of.setdefault((r["problem"], r["budget"], r["solver"]), set()).add(r["seed"])
    common: dict[tuple, set] = {}
    for (prob, budget, _), seeds in seeds_of.items():
        key = (prob, budget)
        common[key] = seeds if key not in common else common[key] & seeds
    for prob, budget, solver in keys:
        runs = [r for r in results if (r["problem"], r["budget"], r["solver"]) == (prob, budget,
                                                                                    solver)
                and r["seed"] in common[prob, budget]]
        if not runs:
            continue
        p = get_problem(prob)
        f_star = float(p.known_optimum[1])
        term, auc, solved, curves, tau = [], [], [], [], []
        for r in runs:
            traj = Trajectory.from_json(r["trajectory"])
            grid, curve = metrics.progress_curve(traj, r["estimates"], f_x0[prob], f_star,
                                                 p.minimize)
            term.append(metrics.terminal_gap(curve))
            auc.append(metrics.area_under_curve(curve, grid))
            tau.append(metrics.solve_time(curve, grid, ALPHA))
            solved.append(np.isfinite(tau[-1]))
            curves.append(metrics.curve_on_grid(curve, grid))
        rows.append({
            "problem": prob, "budget": budget, "solver": solver, "M": len(runs),
            "terminal_gap": float(np.mean(term)), "terminal_gap_ci": metrics.bootstrap_ci(
                term, n_boot, seed=1), "auc": float(np.mean(auc)),
            "auc_ci": metrics.bootstrap_ci(auc, n_boot, seed=2),
            "max_terminal_gap": float(np.max(term)),
            "worse_than_x0": int(np.sum(np.asarray(term) > 1.0 + 1e-9)),
            "solve_times": [float(t) for t in tau],
            "solve_rate": float(np.mean(solved)),
            "solve_rate_ci": metrics.bootstrap_ci(np.asarray(solved, float), n_boot, seed=3),
            "wall_s": float(np.mean([r["wall_s"] for r in runs])),
            "budget_used": int(np.max([r["budget_used"] for r in runs])),
            "curves": np.array(curves),
        })
    return rows


def environment() -> dict:
    import botorch
    import cma
    import scipy
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # the code this bench runs (other packages' edits in progress do not mark it dirty)
    code = ["simopt/solvers", "simopt/problems", "simopt/problem.py", "simopt/metrics.py", "core",
            "bench/simopt_portfolio.py"]
    return {
        "commit": provenance.commit(code),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "cpu": cpu,
        "cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "torch": torch.__version__,
        "botorch": botorch.__version__, "cma": cma.__version__,
        "load_avg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def fmt_ci(mean: float, ci: tuple[float, float], digits: int = 3) -> str:
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def write_report(rows: list[dict], env: dict, args: argparse.Namespace, total_s: float,
                 out: Path, skipped: list[tuple[str, str]], stopped: bool) -> None:
    reached = sorted({r["M"] for r in rows})
    lines = [
        "# Solver portfolio on the built-in problems (SimOpt metrics)",
        "",
        f"Commit `{env['commit']}`, run {env['date_utc']} UTC. Label: **{args.label}**. "
        "Command: `python bench/simopt_portfolio.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "Every row below comes from this one run of this code (nothing merged from older runs).",
        "",
        (f"**Stopped by --time-limit {args.time_limit:g} s**: {args.macroreps} macro-replications "
         f"were planned; each (problem, budget) cell is summarized over the seeds all of its "
         f"solvers completed, M = {', '.join(map(str, reached))} (column M)."
         if stopped else f"All {args.macroreps} planned macro-replications ran."),
        "",
        f"Macro-replications per cell: column M (seeds 0..M-1, the same "
        f"for every solver); post-replications per recommended design: {args.n_postreps} (one "
        f"CRN seed); f* = the reference optimum of each problem; gap = (f(x_t) - f*) / "
        f"(f(x0) - f*), post-replicated; a gap below 0 means the post-replicated value beat "
        f"the reference optimum (noise). Brackets: 95% percentile bootstrap intervals over "
        f"macro-replications ({args.n_boot} resamples). solve rate: fraction of runs whose "
        f"gap reached <= {ALPHA}. wall: mean seconds per run (solver only, one core each, "
        f"{args.n_jobs} workers).",
        "",
        "Environment: " + ", ".join(f"{k}={v}" for k, v in env.items() if k != "commit")
        + f", total wall time {total_s / 60:.1f} min.",
        "",
        "worse than x0: macro-replications whose terminal gap exceeds 1 (the recommendation is "
        "worse than the start); max gap: the worst macro-replication.",
        "",
    ]
    if skipped:
        lines += ["Not run (the solver cannot move on the problem's variables: "
                  "`simopt.solvers.solver_can_move`): "
                  + ", ".join(f"{s} on {p}" for p, s in skipped) + ".", ""]
    for prob in dict.fromkeys(r["problem"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["problem"] == prob}, reverse=True):
            cell = [r for r in rows if r["problem"] == prob and r["budget"] == budget]
            cell.sort(key=lambda r: r["terminal_gap"])
            lines += [
                f"## {prob}, budget {budget}", "",
                "| solver | M | terminal gap | max gap | worse than x0 | AUC | 0.1-solve rate "
                "| wall (s) |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in cell:
                lines.append(
                    f"| {r['solver']} | {r['M']} | "
                    f"{fmt_ci(r['terminal_gap'], r['terminal_gap_ci'])} | "
                    f"{r['max_terminal_gap']:.3f} | {r['worse_than_x0']} | "
                    f"{fmt_ci(r['auc'], r['auc_ci'])} | "
                    f"{fmt_ci(r['solve_rate'], r['solve_rate_ci'], 2)} | {r['wall_s']:.2f} |"
                )
            lines.append("")
    # which solver wins where: the point of a portfolio
    lines += ["## Best solver per problem and budget (lowest mean terminal gap)", "",
              "| problem | budget | best | terminal gap |", "|---|---|---|---|"]
    for prob in dict.fromkeys(r["problem"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["problem"] == prob}, reverse=True):
            best = min((r for r in rows if r["problem"] == prob and r["budget"] == budget),
                       key=lambda r: r["terminal_gap"])
            lines.append(f"| {prob} | {budget} | {best['solver']} | "
                         f"{best['terminal_gap']:.3f} |")
    lines += ["", "## gp_bo against random search and against doing nothing", "",
              "| problem | budget | M | gp_bo mean gap | random_search mean gap | gp_bo below "
              "random search | gp_bo max gap < 1 |", "|---|---|---|---|---|---|---|"]
    for prob in dict.fromkeys(r["problem"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["problem"] == prob}, reverse=True):
            cell = {r["solver"]: r for r in rows if r["problem"] == prob and r["budget"] == budget}
            if "gp_bo" in cell and "random_search" in cell:
                g, rs = cell["gp_bo"], cell["random_search"]
                lines.append(
                    f"| {prob} | {budget} | {g['M']} | "
                    f"{fmt_ci(g['terminal_gap'], g['terminal_gap_ci'])} | "
                    f"{fmt_ci(rs['terminal_gap'], rs['terminal_gap_ci'])} | "
                    f"{'yes' if g['terminal_gap'] < rs['terminal_gap'] else 'no'} | "
                    f"{'yes' if g['max_terminal_gap'] < 1.0 else 'no'} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(list_problems()),
                    help="comma-separated problem names (default: all)")
    ap.add_argument("--solvers", default=",".join(solvers.names()),
                    help="comma-separated solver names (default: all)")
    ap.add_argument("--macroreps", type=int, default=5)
    ap.add_argument("--budget-fraction", default="1.0,0.2",
                    help="fractions of each problem's default budget (comma-separated)")
    ap.add_argument("--n-postreps", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--label", default="full run")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds after which no new job starts (the report says so)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/simopt_portfolio.md"))
    ap.add_argument("--resume", action="store_true",
                    help="reuse runs already saved in the raw JSONL beside --out; run the rest")
    ap.add_argument("--summarize-only", action="store_true",
                    help="write the report from the runs saved so far (a partial run)")
    args = ap.parse_args(argv)

    from joblib import Parallel, delayed

    probs = [get_problem(p).name for p in args.problems.split(",") if p]
    names = [s for s in args.solvers.split(",") if s]
    fracs = [float(f) for f in args.budget_fraction.split(",") if f]
    env = environment()
    t0 = time.perf_counter()
    capable = {(p, s): solvers.solver_can_move(s, get_problem(p)) for p in probs for s in names}
    skipped = [(p, s) for (p, s), ok in capable.items() if not ok]
    jobs = [
        (p, s, max(1, int(round(get_problem(p).default_budget * f))), m, args.n_postreps)
        for p in probs for f in fracs for s in names for m in range(args.macroreps)
        if capable[p, s]
    ]
    # macro-replication-major order, so a run stopped by --time-limit still covers every cell
    # with m = 0, 1, ...; the smaller budget fractions (cheap, and where the targets
    # are) advance twice as fast as the full budget: 20% m=0, then {20% m=1, 100% m=0}, ...
    full = {p: get_problem(p).default_budget for p in probs}

    def order(j: tuple) -> tuple:
        m = j[3] if j[2] < full[j[0]] else 2 * j[3] + 1
        return (m, j[1] == "gp_bo", -j[2])

    jobs.sort(key=order)
    out = Path(args.out)
    runs_file = out.with_suffix(".runs.jsonl")  # every finished run, appended as it completes
    done: list[dict] = []
    if (args.resume or args.summarize_only) and runs_file.exists():
        done = [json.loads(line) for line in runs_file.read_text().splitlines() if line]
    have = {(r["problem"], r["solver"], r["budget"], r["seed"]) for r in done}
    todo = [] if args.summarize_only else [j for j in jobs if tuple(j[:4]) not in have]
    print(f"{len(todo)} runs on {args.n_jobs} workers ({len(done)} reused)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not (args.resume or args.summarize_only):
        runs_file.write_text("")
    stopped = False

    def feed():
        nonlocal stopped
        for j in todo:
            if args.time_limit is not None and time.perf_counter() - t0 > args.time_limit:
                stopped = True
                return
            yield delayed(run_job)(*j)

    with runs_file.open("a") as fh:
        for i, r in enumerate(Parallel(n_jobs=args.n_jobs, return_as="generator_unordered",
                                       pre_dispatch="n_jobs")(feed())):
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            done.append(r)
            print(f"[{i + 1}/{len(todo)}] {r['problem']} {r['solver']} b={r['budget']} "
                  f"m={r['seed']} {r['wall_s']:.1f}s", flush=True)
    wanted = {tuple(j[:4]) for j in jobs}
    results = [r for r in done if (r["problem"], r["solver"], r["budget"], r["seed"]) in wanted]
    f_x0 = {p: get_problem(p).simulate(get_problem(p).x0, args.n_postreps,
                                       seed=POSTREP_SEED).mean for p in probs}
    rows = summarize(results, f_x0, args.n_boot)
    total = time.perf_counter() - t0
    write_report(rows, env, args, total, out, skipped, stopped)
    raw = out.with_suffix(".json")
    raw.write_text(json.dumps({"commit": env["commit"], "date_utc": env["date_utc"],
                               "command": "python bench/simopt_portfolio.py "
                               + " ".join(sys.argv[1:]),
                               "rows": [{k: v for k, v in r.items() if k != "curves"}
                                        for r in rows]}, indent=1, default=float))
    stem = out.stem
    for prob in probs:
        budgets = sorted({r["budget"] for r in rows if r["problem"] == prob}, reverse=True)
        for k, budget in enumerate(budgets):
            frac = budget / get_problem(prob).default_budget
            suffix = "" if k == 0 and frac == 1.0 else f"_b{budget}"
            m = min(r["M"] for r in rows if r["problem"] == prob and r["budget"] == budget)
            metrics.plot_progress_curves(
                {r["solver"]: r["curves"] for r in rows if r["problem"] == prob
                 and r["budget"] == budget},
                out.parent / f"{stem}_{prob}{suffix}.png",
                title=f"{prob}, budget {budget} (M={m})",
            )
    # solvability profiles over problems and macro-replications, one per budget fraction; a
    # solver that cannot run on a problem counts as not solving it
    for f in fracs:
        profiles = {}
        for s_name in names:
            taus = []
            for prob in probs:
                budget = max(1, int(round(get_problem(prob).default_budget * f)))
                cell = [r for r in rows if r["problem"] == prob and r["budget"] == budget]
                m = min((r["M"] for r in cell), default=0)
                mine = [r for r in cell if r["solver"] == s_name]
                taus += mine[0]["solve_times"] if mine else [float("inf")] * m
            if taus:
                profiles[s_name] = metrics.solvability_profile(taus)
        if profiles:
            metrics.plot_solvability(
                profiles, out.parent / f"{stem}_solvability_{int(round(100 * f))}pct.png",
                title=f"{ALPHA}-solvability over {len(probs)} problems, {f:.0%} budgets",
            )
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
