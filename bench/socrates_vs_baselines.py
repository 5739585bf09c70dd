"""SOCRATES against each single solver at the same real budget, with ablations.

For each problem and macro-replication ``m`` (seed ``m``), at ``fraction`` of the problem's
default budget:

- ``socrates``: the full pipeline, offline LLM policies; the data collection for the replicas
  is charged to the same budget (its recommendation is ``x0`` until the data is in);
- ablations: ``socrates-no-skeleton`` (replicas without the causal skeleton),
  ``socrates-k1`` (a single replica), ``socrates-no-replan`` (no adaptive re-planning);
- every portfolio solver alone with the whole budget from ``x0``;
- ``best-single-in-hindsight``: the single solver with the lowest mean terminal gap on that
  problem, chosen after the fact (an oracle no real user has).

Every recommended design is scored by independent post-replications (one fixed seed, CRN across
designs), never by the optimizers' own estimates; the normalized gap uses the problem's
reference optimum and ``f(x0)`` post-replicated the same way. Prints a Markdown table per
problem (terminal gap and AUC, mean with a 95% bootstrap interval over macro-replications, and
mean wall time) and writes it to ``bench/results/socrates_vs_baselines.md``.

    .venv/bin/python bench/socrates_vs_baselines.py --problems CNTNEWS-1 MM1-1 --macroreps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simopt import get_problem, list_problems, metrics, solvers  # noqa: E402

N_POSTREPS = 200
POSTREP_SEED = 777_777
VARIANTS = {
    "socrates": {},
    "socrates-no-skeleton": {"use_skeleton": False},
    "socrates-k1": {"n_replicas": 1},
    "socrates-no-replan": {"replan": False},
}


def one_job(problem_name: str, method: str, budget: int, seed: int, run_root: str) -> dict:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    problem = get_problem(problem_name)
    t0 = time.perf_counter()
    if method.startswith("socrates"):
        from graphs.socrates import run_socrates

        res = run_socrates(problem, budget, seed=seed,
                           run_dir=Path(run_root) / f"{problem_name}-{method}-{seed}",
                           **VARIANTS[method])
        traj = res.trajectory
        traj.points.insert(0, (0, problem.project(problem.x0), float("nan")))
        traj.budget = budget
        extra = {"schedule": res.schedule.describe(), "replans": len(res.replans)}
    else:
        traj = solvers.get(method).run(problem, budget, seed=seed)
        extra = {}
    wall = time.perf_counter() - t0
    f_star = float(problem.known_optimum[1])
    f_x0 = problem.simulate(problem.x0, N_POSTREPS, seed=POSTREP_SEED).mean
    ev = metrics.evaluate_run(problem, traj, f_star, f_x0=f_x0, n_postreps=N_POSTREPS,
                              seed=POSTREP_SEED)
    return {"problem": problem_name, "method": method, "seed": seed, "wall_s": wall,
            "terminal_gap": ev["terminal_gap"], "auc": ev["auc"], **extra}


def summarize(rows: list[dict]) -> str:
    out = []
    by_problem: dict[str, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(r["problem"], []).append(r)
    for prob, rs in by_problem.items():
        methods = sorted({r["method"] for r in rs})
        stats = {}
        for m in methods:
            tg = np.array([r["terminal_gap"] for r in rs if r["method"] == m])
            auc = np.array([r["auc"] for r in rs if r["method"] == m])
            wall = np.mean([r["wall_s"] for r in rs if r["method"] == m])
            stats[m] = (tg, auc, wall)
        singles = [m for m in methods if not m.startswith("socrates")]
        if singles:
            best = min(singles, key=lambda m: stats[m][0].mean())
            stats[f"best-single-in-hindsight ({best})"] = stats[best]
        out.append(f"\n### {prob}\n")
        out.append("| method | terminal gap (95% CI) | AUC (95% CI) | wall s |")
        out.append("|---|---|---|---|")
        for m, (tg, auc, wall) in sorted(stats.items(), key=lambda kv: kv[1][0].mean()):
            lo, hi = metrics.bootstrap_ci(tg) if tg.size > 1 else (tg[0], tg[0])
            alo, ahi = metrics.bootstrap_ci(auc) if auc.size > 1 else (auc[0], auc[0])
            out.append(f"| {m} | {tg.mean():.3f} ({lo:.3f}, {hi:.3f}) | "
                       f"{auc.mean():.3f} ({alo:.3f}, {ahi:.3f}) | {wall:.1f} |")
    out.append(across_problems(rows))
    return "\n".join(out) + "\n"


def across_problems(rows: list[dict]) -> str:
    """One row per method over every problem it ran on: mean, median and worst of its
    per-problem mean terminal gap, and how many problems it was the best (ties within 0.005).

    This is the comparison that matters to a user who does not know in advance which solver
    suits the system: a fixed single solver against SOCRATES choosing per problem.
    """
    per: dict[str, dict[str, float]] = {}
    for r in rows:
        per.setdefault(r["method"], {}).setdefault(r["problem"], [])
        per[r["method"]][r["problem"]].append(r["terminal_gap"])
    probs = sorted({r["problem"] for r in rows})
    full = {m: {p: float(np.mean(v[p])) for p in probs} for m, v in per.items()
            if all(p in v for p in probs)}
    if len(probs) < 2 or not full:
        return ""
    best = {p: min(full[m][p] for m in full) for p in probs}
    lines = [f"\n### All {len(probs)} problems (per-problem mean terminal gap)\n",
             "| method | mean | median | worst | best on (ties within 0.005) |",
             "|---|---|---|---|---|"]
    for m in sorted(full, key=lambda m: np.mean(list(full[m].values()))):
        v = np.array([full[m][p] for p in probs])
        wins = sum(full[m][p] <= best[p] + 0.005 for p in probs)
        lines.append(f"| {m} | {v.mean():.3f} | {np.median(v):.3f} | {v.max():.3f} | "
                     f"{wins} of {len(probs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=list_problems())
    ap.add_argument("--macroreps", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--methods", nargs="+", default=[*VARIANTS, *solvers.names()])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/results/socrates_vs_baselines.md"))
    ap.add_argument("--merge", default=None, help="a .jsonl of earlier rows: methods not run "
                    "now are taken from it (e.g. re-run SOCRATES only against stored solvers)")
    args = ap.parse_args(argv)
    from joblib import Parallel, delayed

    run_root = str(ROOT / "runs/bench-socrates")
    jobs = []
    for p in args.problems:
        budget = int(get_problem(p).default_budget * args.fraction)
        for m in args.methods:
            if m == "ranking_selection":
                continue  # a selection procedure, not an optimizer from x0
            for s in range(args.macroreps):
                jobs.append((p, m, budget, s, run_root))
    t0 = time.time()
    rows = Parallel(n_jobs=args.jobs, verbose=5)(delayed(one_job)(*j) for j in jobs)
    merged_note = ""
    if args.merge:
        old = [json.loads(line) for line in Path(args.merge).read_text().splitlines() if line]
        keep = [r for r in old if r["method"] not in args.methods
                and r["problem"] in args.problems]
        rows = rows + keep
        merged_note = (f"Rows for {sorted({r['method'] for r in keep})} are from an earlier "
                       f"run ({Path(args.merge).name}), same seeds and settings.\n")
    table = summarize(rows)
    import torch

    header = (
        f"# SOCRATES vs single solvers ({args.fraction:.0%} of each default budget)\n\n"
        f"Macro-replications: {args.macroreps}; post-replications per design: {N_POSTREPS}; "
        f"offline LLM policies; total wall time {time.time() - t0:.0f} s on "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, torch {torch.__version__}.\n"
        "Gap: (f(x) - f*) / (f(x0) - f*), lower is better; SOCRATES pays for its replica "
        "data out of the same budget.\n" + merged_note
    )
    print(header + table)
    Path(args.out).write_text(header + table)
    Path(args.out).with_suffix(".jsonl").write_text(
        "\n".join(json.dumps(r, default=float) for r in rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
