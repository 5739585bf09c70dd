"""The SimOpt library's own solvers as a yardstick on integer problems (issue 18, target 2).

Question: on integer problems, does the project's best solver come within 0.05 normalized gap of
SimOpt's random search (``RNDSRCH``) at the same budget?

The SimOpt library (PyPI ``simoptlib``, 1.2.4) imports as ``simopt``, like this project, so it
cannot share our virtual environment. It lives in its own venv (``--simoptlib-python``, default
``/tmp/simoptlib-venv/bin/python``) and this file, started there with ``--worker``, is a small
JSON-lines server around it: it runs SimOpt's solvers on SimOpt's problems (SimOpt's own
``run_solver._run_mrep``, SimOpt's random-number streams for macro-replication ``m``) and
simulates SimOpt's models at given designs. Nothing of SimOpt is copied here; the worker only
calls the installed library.

What runs, per problem, budget and macro-replication ``m`` (the same ``m`` for every solver):

- ``simoptlib:RNDSRCH`` (and ``simoptlib:DASSO`` where SimOpt declares it compatible): SimOpt's
  solver on SimOpt's problem, SimOpt's streams for macro-replication ``m``;
- ``ours:<solver>``: the project's solver on SimOpt's simulator, through the worker
  (:class:`SimOptProblem`; replication ``k`` of seed ``m`` uses MRG32k3a stream
  ``(1000 + m, rng, k)``, common random numbers across designs, as in the project);
- ``ours-reimpl:<solver>`` (problems the project re-implements, i.e. DUALSOURCING-1): the
  project's solver on the project's own simulator, seed ``m``.

One scorer for all: every recommended design of every run is post-replicated ``--n-postreps``
times on SimOpt's simulator, MRG32k3a stream 0 (the stream SimOpt reserves for
post-replication), the same replications for every design. Gap = ``(f(x) - f*) / (f(x0) - f*)``
with ``f*`` the known optimum where SimOpt has one (EXAMPLE-2), else the best post-replicated
value of any design recommended by any run of the problem or listed as a reference design
(SimOpt's proxy-optimum convention), so a gap near 0 means "as good as the best anyone found".

Why this is fair, and where it is not: both sides see the same simulator and the same scorer;
SimOpt's random search draws its designs from each problem's own ``get_random_solution``
(problem knowledge: e.g. TABLEALLOCATION-1 fills the restaurant to capacity, DUALSOURCING-1
draws from ``[40, 60] x [70, 90]`` around ``x0``), while the project's random search is
uniform on the feasible lattice of its search box. SimOpt's RNDSRCH on RMITD-1 draws
non-integer designs although the problem is declared discrete (its random-solution rule is
continuous); its scores are reported as they are. The "best project solver" is chosen after
the fact (lowest mean gap), which favours the project; every solver's gap is reported.

    python bench/simoptlib_yardstick.py                       # defaults below
    python bench/simoptlib_yardstick.py --problems TABLEALLOCATION-1 --macroreps 3

Runs go seed by seed (all solvers of macro-replication ``m`` before ``m + 1``), are appended to
``bench/results/simoptlib_yardstick.runs.jsonl`` as they finish (``--resume`` reuses them), and
``--time-limit`` starts no new seed after that many seconds; the report uses the seeds every
solver of a cell completed.

Why one file of this length: the worker (run in SimOpt's venv) and the driver speak one
JSON-lines protocol; keeping both halves in one file keeps that protocol in one place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = "--worker" in sys.argv
ROOT = Path(__file__).resolve().parents[1]


# ================================================================================================
# worker: runs inside the simoptlib venv; imports SimOpt's ``simopt``, never this project
# ================================================================================================
def worker_main() -> int:  # pragma: no cover - runs in the other venv
    import numpy as np
    from mrg32k3a.mrg32k3a import MRG32k3a
    from simopt.base import Solution
    from simopt.directory import problem_directory, solver_directory
    from simopt.experiment import run_solver
    from simopt.experiment.single import ProblemSolver

    problems: dict[tuple[str, int], object] = {}

    def problem(name: str, budget: int | None = None):
        key = (name, int(budget or 0))
        if key not in problems:
            factors = {"budget": int(budget)} if budget else None
            problems[key] = problem_directory[name](fixed_factors=factors)
        return problems[key]

    def info(name: str) -> dict:
        p = problem(name)
        f = p.model.factors
        return {
            "dim": p.dim, "x0": list(p.factors["initial_solution"]), "minmax": list(p.minmax),
            "lower": [float(v) for v in p.lower_bounds],
            "upper": [float(v) for v in p.upper_bounds],
            "budget": int(p.factors["budget"]), "variable_type": str(p.variable_type),
            "constraint_type": str(p.constraint_type), "n_rngs": int(p.model.n_rngs),
            "optimal_solution": (None if p.optimal_solution is None
                                 else list(p.optimal_solution)),
            "optimal_value": p.optimal_value,
            "table_cap": f.get("table_cap"), "capacity": f.get("capacity"),
            # SimOpt's own compatibility check (an empty message: compatible)
            "compatible": {s: not ProblemSolver(solver=solver_directory[s](), problem=p,
                                                create_pickle=False).check_compatibility()
                           for s in solver_directory},
        }

    def simulate(name: str, x: list, n: int, stream: int, first: int) -> list[float]:
        p = problem(name)
        x = tuple(int(v) if float(v).is_integer() else float(v) for v in x)
        sol = Solution(x, p)
        sol.attach_rngs([MRG32k3a(s_ss_sss_index=[int(stream), i, int(first)])
                         for i in range(p.model.n_rngs)], copy=False)
        p.simulate(sol, int(n))  # advances the subsubstream after every replication
        return [float(v) for v in np.asarray(sol.objectives)[:, 0]]

    def run(name: str, solver: str, budget: int, mrep: int, factors: dict) -> dict:
        s = solver_directory[solver](fixed_factors=factors or None)
        p = problem_directory[name](fixed_factors={"budget": int(budget)})
        t0 = time.perf_counter()
        df, _ = run_solver._run_mrep(s, p, int(mrep))
        wall = time.perf_counter() - t0
        df = df.sort_values("step")
        return {"budgets": [int(b) for b in df["budget"]],
                "xs": [[float(v) for v in x] for x in df["solution"]], "wall_s": wall}

    def feasible(name: str, x: list) -> bool:
        p = problem(name)
        return bool(p.check_deterministic_constraints(tuple(x)))

    ops = {"info": info, "simulate": simulate, "run": run, "feasible": feasible}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = {"ok": ops[req.pop("op")](**req)}
        except Exception as exc:  # one boundary: the caller reports it with the request
            out = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if WORKER:
    raise SystemExit(worker_main())


# ================================================================================================
# main: this project's venv
# ================================================================================================
import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from core.errors import InputError, SimulationError  # noqa: E402
from simopt import get_problem, metrics, solvers  # noqa: E402
from simopt.problem import Observations, Problem, Variable  # noqa: E402
from simopt.solvers.base import design_key  # noqa: E402

POSTREP_STREAM = 0  # SimOpt reserves stream 0 for post-replications
OUR_STREAM0 = 1000  # our runs' seeds m use streams 1000 + m (SimOpt's runs use 3 + m)
ALPHA = 0.1

#: integer problems of simoptlib 1.2.4 measured here, and why the others are not
PROBLEMS = ["DUALSOURCING-1", "TABLEALLOCATION-1", "EXAMPLE-2", "RMITD-1"]
LEFT_OUT = {
    "CONTAM-1": "stochastic constraints (the project has deterministic ones only)",
    "AMUSEMENTPARK-1": "an equality constraint (sum of capacities = 350) and a budget of 100",
    "HOTEL-1": "56 variables and a budget of 100 (10 random-search designs)",
    "IRONORE-1": "mixed variables (not an integer problem)",
}
#: designs known to be good, post-replicated as candidates for the proxy optimum f*
REFERENCE_DESIGNS = {"DUALSOURCING-1": [[50.0, 114.0]]}
#: the project's re-implementations of SimOpt problems
REIMPLEMENTED = {"DUALSOURCING-1": "DUALSOURCING-1"}


class Worker:
    """A JSON-lines client of this file's ``--worker`` mode in the simoptlib venv."""

    def __init__(self, python: str):
        if not Path(python).exists():
            raise InputError(f"--simoptlib-python {python} does not exist; create the venv "
                             "(python3 -m venv /tmp/simoptlib-venv; "
                             "/tmp/simoptlib-venv/bin/pip install simoptlib==1.2.4)")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env, cwd="/tmp",
        )

    def call(self, op: str, **kw) -> object:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simoptlib worker died during {op} {kw}")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"simoptlib worker: {op} {kw}: {out['error']}")
        return out["ok"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class SimOptProblem(Problem):
    """A SimOpt problem as a project :class:`Problem`: SimOpt's simulator behind the worker.

    Integer variables with SimOpt's bounds; the deterministic constraints written as
    ``A x <= b`` from SimOpt's own factors (TABLEALLOCATION-1: ``table_cap . x <= capacity``;
    RMITD-1: ``x_{i+1} - x_i <= 0``), checked against SimOpt's
    ``check_deterministic_constraints`` at ``x0``. Replication ``k`` with seed ``s`` uses
    MRG32k3a stream ``(OUR_STREAM0 + s, rng, k)``.
    """

    def __init__(self, worker: Worker, name: str):
        self.worker = worker
        self.info = info = worker.call("info", name=name)
        self.name = name
        self.description = f"SimOpt library problem {name} (simoptlib 1.2.4), via a subprocess"
        self.minimize = info["minmax"][0] < 0
        self.variables = [Variable(f"x{i}", lo, hi, integer=True)
                          for i, (lo, hi) in enumerate(zip(info["lower"], info["upper"],
                                                           strict=True))]
        self.x0 = np.asarray(info["x0"], dtype=float)
        self.default_budget = int(info["budget"])
        opt = info["optimal_solution"]
        self.known_optimum = (None if opt is None or info["optimal_value"] is None
                              else (np.asarray(opt, float), float(info["optimal_value"])))
        if name == "TABLEALLOCATION-1":
            self.set_constraints([list(map(float, info["table_cap"]))],
                                 [float(info["capacity"])])
        elif name == "RMITD-1":
            d = len(self.variables)
            A = np.zeros((d - 1, d))
            for i in range(d - 1):
                A[i, i], A[i, i + 1] = -1.0, 1.0
            self.set_constraints(A, np.zeros(d - 1))
        elif "DETERMINISTIC" in info["constraint_type"]:
            raise InputError(f"{name}: deterministic constraints not written as A x <= b here")

    def simulate(self, x, n_reps: int = 1, seed: int = 0, first_rep: int = 0) -> Observations:
        xv = self.check_x(x)
        vals = self.worker.call("simulate", name=self.name, x=xv.tolist(), n=int(n_reps),
                                stream=OUR_STREAM0 + int(seed), first=int(first_rep))
        obj = np.asarray(vals, dtype=float)
        if not np.all(np.isfinite(obj)):
            raise SimulationError(f"{self.name}: non-finite objective at {xv.tolist()}",
                                  problem=self.name, x=xv)
        return Observations(objective=obj, records={}, x=xv)

    def _simulate(self, x, rngs):  # simulate() above talks to the worker directly
        raise NotImplementedError


class Scorer:
    """Post-replicated SimOpt values of designs (stream 0, cached), in the problem's sense."""

    def __init__(self, worker: Worker, n_postreps: int):
        self.worker, self.n = worker, int(n_postreps)
        self.cache: dict[tuple, float] = {}

    def __call__(self, name: str, x) -> float:
        key = (name, design_key(np.asarray(x, float)))
        if key not in self.cache:
            vals = self.worker.call("simulate", name=name, x=[float(v) for v in x], n=self.n,
                                    stream=POSTREP_STREAM, first=0)
            self.cache[key] = float(np.mean(vals))
        return self.cache[key]


def run_ours(problem: Problem, solver: str, budget: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    traj = solvers.get(solver).run(problem, budget, seed=seed)
    wall = time.perf_counter() - t0
    return {"budgets": [int(b) for b, _, _ in traj.points],
            "xs": [x.tolist() for _, x, _ in traj.points], "wall_s": wall,
            "budget_used": int(traj.budget_used)}


def cell_rows(runs: list[dict], scorer: Scorer, minimize: bool, f_x0: float, f_star: float,
              n_boot: int) -> list[dict]:
    """One row per solver of one (problem, budget) cell, over the seeds all solvers ran."""
    by_solver: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_solver.setdefault(r["solver"], {})[r["seed"]] = r
    seeds = set.intersection(*(set(v) for v in by_solver.values())) if by_solver else set()
    rows = []
    for solver, per_seed in by_solver.items():
        term, auc, tau, curves, walls, infeasible = [], [], [], [], [], 0
        for m in sorted(seeds):
            r = per_seed[m]
            if "error" in r:
                continue
            budget = r["budget"]
            t = np.minimum(np.asarray(r["budgets"], float) / budget, 1.0)
            est = np.array([scorer(r["problem"], x) for x in r["xs"]])
            grid, curve = metrics.progress_curve(t, est, f_x0, f_star, minimize)
            term.append(metrics.terminal_gap(curve))
            auc.append(metrics.area_under_curve(curve, grid))
            tau.append(metrics.solve_time(curve, grid, ALPHA))
            curves.append(metrics.curve_on_grid(curve, grid))
            walls.append(r["wall_s"])
            infeasible += int(not r.get("final_feasible", True))
        errors = [per_seed[m]["error"] for m in sorted(seeds) if "error" in per_seed[m]]
        if not term:
            rows.append({"solver": solver, "M": 0, "error": errors[0] if errors else "no runs"})
            continue
        rows.append({
            "solver": solver, "M": len(term), "terminal_gap": float(np.mean(term)),
            "terminal_gap_ci": metrics.bootstrap_ci(term, n_boot, seed=1),
            "max_gap": float(np.max(term)), "gaps": [float(g) for g in term],
            "auc": float(np.mean(auc)), "auc_ci": metrics.bootstrap_ci(auc, n_boot, seed=2),
            "solve_rate": float(np.mean(np.isfinite(tau))), "wall_s": float(np.mean(walls)),
            "curves": np.array(curves), "infeasible_final": infeasible,
        })
    return rows


def diff_ci(a: list[float], b: list[float], n_boot: int, seed: int = 7) -> tuple[float, float]:
    """95% bootstrap interval of ``mean(a) - mean(b)`` (independent resampling of each)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    d = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--solvers", default="random_search,integer_local_search,gp_bo,"
                    "nelder_mead,cmaes,spsa,ranking_selection",
                    help="the project's solvers (each runs where it can move)")
    ap.add_argument("--simoptlib-solvers", default="RNDSRCH,DASSO",
                    help="SimOpt's solvers (each runs where SimOpt declares it compatible)")
    ap.add_argument("--budget-fraction", default="0.2,1.0")
    ap.add_argument("--macroreps", type=int, default=10)
    ap.add_argument("--n-postreps", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds after which no new seed starts")
    ap.add_argument("--simoptlib-python", default="/tmp/simoptlib-venv/bin/python")
    ap.add_argument("--out", default=str(ROOT / "bench/results/simoptlib_yardstick.md"))
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    worker = Worker(args.simoptlib_python)
    shown = subprocess.run([args.simoptlib_python, "-m", "pip", "show", "simoptlib"],
                           capture_output=True, text=True).stdout
    version = next((ln.split(":", 1)[1].strip() for ln in shown.splitlines()
                    if ln.startswith("Version")), "?")
    load_at_start = os.getloadavg()[0]
    names = [p for p in args.problems.split(",") if p]
    ours = [s for s in args.solvers.split(",") if s]
    theirs = [s for s in args.simoptlib_solvers.split(",") if s]
    fracs = [float(f) for f in args.budget_fraction.split(",") if f]
    probs = {n: SimOptProblem(worker, n) for n in names}
    for n, p in probs.items():  # our A x <= b must agree with SimOpt's rule at x0
        if p.constrained and not worker.call("feasible", name=n, x=p.x0.tolist()):
            raise InputError(f"{n}: x0 infeasible under SimOpt's rule")

    # the planned runs, seed-major: a stopped run keeps whole seeds
    plan = []
    for m in range(args.macroreps):
        for n, p in probs.items():
            for f in fracs:
                budget = max(1, int(round(p.default_budget * f)))
                for s in theirs:
                    if p.info["compatible"].get(s):
                        plan.append((m, n, budget, f"simoptlib:{s}"))
                for s in ours:
                    if solvers.solver_can_move(s, p):
                        plan.append((m, n, budget, f"ours:{s}"))
                        if n in REIMPLEMENTED:
                            plan.append((m, n, budget, f"ours-reimpl:{s}"))
    out = Path(args.out)
    runs_file = out.with_suffix(".runs.jsonl")
    done: list[dict] = []
    if args.resume and runs_file.exists():
        done = [json.loads(ln) for ln in runs_file.read_text().splitlines() if ln]
    else:
        runs_file.parent.mkdir(parents=True, exist_ok=True)
        runs_file.write_text("")
    have = {(r["seed"], r["problem"], r["budget"], r["solver"]) for r in done}
    stopped, started_seed = False, None
    with runs_file.open("a") as fh:
        for m, n, budget, solver in plan:
            if (m, n, budget, solver) in have:
                continue
            if m != started_seed:
                if args.time_limit is not None and time.perf_counter() - t_start > args.time_limit:
                    stopped = True
                    break
                started_seed = m
            kind, name = solver.split(":", 1)
            try:
                if kind == "simoptlib":
                    r = worker.call("run", name=n, solver=name, budget=budget, mrep=m,
                                    factors={})
                elif kind == "ours":
                    r = run_ours(probs[n], name, budget, m)
                else:
                    r = run_ours(get_problem(REIMPLEMENTED[n]), name, budget, m)
                r["final_feasible"] = bool(worker.call("feasible", name=n, x=r["xs"][-1]))
            except (RuntimeError, InputError, SimulationError) as exc:
                r = {"error": str(exc).splitlines()[0][:300], "wall_s": 0.0}
            r.update(seed=m, problem=n, budget=budget, solver=solver)
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            done.append(r)
            status = f"ERROR {r['error']}" if "error" in r else f"{r['wall_s']:.1f}s"
            print(f"m={m} {n} b={budget} {solver} {status}", flush=True)

    # ---- score: one scorer (SimOpt's simulator, stream 0) for every design -----------------
    scorer = Scorer(worker, args.n_postreps)
    report = []
    summary = []
    curves_out: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for n, p in probs.items():
        mine = [r for r in done if r["problem"] == n]
        if not mine:
            continue
        f_x0 = scorer(n, p.x0)
        cands = [x for r in mine if "xs" in r for x in r["xs"]]
        cands += REFERENCE_DESIGNS.get(n, [])
        if p.known_optimum is not None:
            f_star, star_note = scorer(n, p.known_optimum[0]), "SimOpt's known optimum"
        else:
            vals = [scorer(n, x) for x in cands]
            i = int(np.argmin(vals) if p.minimize else np.argmax(vals))
            f_star = vals[i]
            star_note = (f"best post-replicated design of all runs, "
                         f"{[round(v, 3) for v in cands[i]]}")
        report += [f"## {n} ({'min' if p.minimize else 'max'}imize, {p.dim} integer variables, "
                   f"default budget {p.default_budget})", "",
                   f"f(x0) = {f_x0:.4f} at x0 = {p.x0.tolist()}; f* = {f_star:.4f} "
                   f"({star_note}).", ""]
        for budget in sorted({r["budget"] for r in mine}):
            cell = [r for r in mine if r["budget"] == budget]
            rows = cell_rows(cell, scorer, p.minimize, f_x0, f_star, args.n_boot)
            ok = sorted((r for r in rows if r["M"] > 0), key=lambda r: r["terminal_gap"])
            report += [f"### {n}, budget {budget}", "",
                       "| solver | M | terminal gap | max gap | AUC | 0.1-solve rate | "
                       "final design infeasible | wall (s) |", "|---|---|---|---|---|---|---|---|"]
            for r in ok:
                lo, hi = r["terminal_gap_ci"]
                alo, ahi = r["auc_ci"]
                report.append(
                    f"| {r['solver']} | {r['M']} | {r['terminal_gap']:.3f} [{lo:.3f}, {hi:.3f}] "
                    f"| {r['max_gap']:.3f} | {r['auc']:.3f} [{alo:.3f}, {ahi:.3f}] | "
                    f"{r['solve_rate']:.2f} | {r['infeasible_final']} | {r['wall_s']:.2f} |")
            for r in rows:
                if r["M"] == 0:
                    report.append(f"| {r['solver']} | 0 | failed: {r['error']} | | | | | |")
            report.append("")
            curves_out[n, budget] = {r["solver"]: r["curves"] for r in ok}
            rs = next((r for r in ok if r["solver"] == "simoptlib:RNDSRCH"), None)
            our = [r for r in ok if r["solver"].startswith("ours")]
            if rs is not None and our:
                best = our[0]
                d = best["terminal_gap"] - rs["terminal_gap"]
                lo, hi = diff_ci(best["gaps"], rs["gaps"], args.n_boot)
                summary.append(
                    f"| {n} | {budget} | {best['M']} | {best['solver']} | "
                    f"{best['terminal_gap']:.3f} | {rs['terminal_gap']:.3f} | {d:+.3f} "
                    f"[{lo:+.3f}, {hi:+.3f}] | {'yes' if d <= 0.05 else 'no'} |")
    total = time.perf_counter() - t_start
    worker.close()
    # the code this bench runs (other packages' edits in progress do not mark it dirty)
    dirty = provenance.dirty(["simopt/solvers", "simopt/problems", "simopt/problem.py",
                              "simopt/metrics.py", "core", "bench/simoptlib_yardstick.py"])
    head = [
        "# The SimOpt library's solvers as a yardstick on integer problems",
        "",
        f"Commit `{provenance.commit()}`"
        + (provenance.DIRTY_NOTE if dirty else "")
        + f", run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, simoptlib {version} "
        f"(its own venv). Command: `python bench/simoptlib_yardstick.py "
        + " ".join(sys.argv[1:] if argv is None else argv) + "`",
        "",
        (f"**Stopped by --time-limit {args.time_limit:g} s** after whole seeds; "
         if stopped else "") + f"{args.macroreps} macro-replications planned; column M is what "
        "each cell completed (the same seeds for every solver of the cell). Total wall time "
        f"{total / 60:.1f} min on a shared 2-core machine (load average {load_at_start:.1f} at "
        "the start), one process at a time; wall (s) is the mean per run, SimOpt's runs "
        "inside the worker, ours including the subprocess round trips.",
        "",
        f"Scorer: every recommended design post-replicated {args.n_postreps} times on SimOpt's "
        "simulator (MRG32k3a stream 0, the same replications for every design); gap = "
        "(f(x) - f*) / (f(x0) - f*); brackets: 95% percentile bootstrap over "
        "macro-replications. `simoptlib:X`: SimOpt's solver X on SimOpt's problem; `ours:X`: "
        "the project's solver X on SimOpt's simulator (through the subprocess); "
        "`ours-reimpl:X`: the project's solver on the project's own re-implementation of the "
        "problem, scored by SimOpt's simulator like the rest. Not measured: "
        + "; ".join(f"{k} ({v})" for k, v in LEFT_OUT.items()) + ".",
        "",
        "## Target: the project's best solver within 0.05 gap of SimOpt's random search",
        "",
        "| problem | budget | M | project's best | its mean gap | simoptlib:RNDSRCH mean gap "
        "| difference [95% CI] | within 0.05 |",
        "|---|---|---|---|---|---|---|---|",
        *summary,
        "",
        "The best project solver is picked after the fact (the lowest mean), which favours the "
        "project; the tables below give every solver.",
        "",
    ]
    out.write_text("\n".join(head + report) + "\n")
    for (n, budget), curves in curves_out.items():
        if curves:
            metrics.plot_progress_curves(curves, out.parent / f"{out.stem}_{n}_b{budget}.png",
                                         title=f"{n}, budget {budget} (SimOpt's simulator "
                                         f"scores all)")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
