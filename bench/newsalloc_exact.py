"""NEWSALLOC-1 scored exactly: gp_bo against random search over many seeds, paired.

``bench/simopt_portfolio.py`` scores every recommended design with 100 post-replications on one
common-random-numbers seed. On NEWSALLOC-1 a replication's profit has a standard deviation of
about 60 while the gap between ``x0`` and the optimum is 106, so that scorer moves a design's gap
by several hundredths, the same way for every solver (the same CRN seed), and 10
macro-replications cannot separate solvers whose true gaps differ by a few hundredths. This
problem's expected profit is known in closed form (``simopt.problems.newsalloc.expected_profit``,
negative-binomial demands), so this bench scores each recommendation exactly and runs many more
seeds: the normalized gap of the final design, and of the best design the solver evaluated at
all (what a perfect final selection among its own designs would reach), per seed, with the
paired difference between each solver and the peer (``random_search``) on the same seeds.

Usage: ``python bench/newsalloc_exact.py --seeds 70 --budgets 200`` (about 6 minutes on 2
cores). Writes ``bench/results/newsalloc_exact.md`` and ``.json`` with the commit, the command
and the date.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from simopt import metrics, solvers  # noqa: E402
from simopt.problems.newsalloc import (  # noqa: E402
    CapacitatedNewsvendor,
    exact_optimum,
    expected_profit,
)


def run_one(solver: str, budget: int, seed: int) -> dict:
    """One run from ``x0``: the exact gaps of the final design and the best evaluated one."""
    import torch

    torch.set_num_threads(1)  # two worker processes on two cores
    p = CapacitatedNewsvendor()
    _, f_star = exact_optimum()
    f0 = expected_profit(np.asarray(p.x0))
    seen: set[tuple] = set()
    t0 = time.perf_counter()
    traj = solvers.get(solver).run(
        p, budget, seed=seed, on_evaluate=lambda x, v, u: seen.add(tuple(np.asarray(x)))
    )
    wall = time.perf_counter() - t0

    def gap(x) -> float:
        return (f_star - expected_profit(np.asarray(x))) / (f_star - f0)

    x = traj.points[-1][1]
    return {"solver": solver, "budget": budget, "seed": seed, "x": np.asarray(x).tolist(),
            "gap": gap(x), "best_evaluated_gap": min(gap(y) for y in seen),
            "designs": len(seen), "wall_s": wall}


def ci(v: np.ndarray, seed: int, sign: str = "") -> str:
    """``mean [lo, hi]`` (``sign="+"``: signed, for differences)."""
    lo, hi = metrics.bootstrap_ci(v, 2000, seed=seed)
    return f"{np.mean(v):{sign}.3f} [{lo:{sign}.3f}, {hi:{sign}.3f}]"


def report(rows: list[dict], args: argparse.Namespace, env: dict) -> str:
    out = [
        "# NEWSALLOC-1 scored exactly (closed-form expected profit)", "",
        f"Commit `{env['commit']}`, run {env['date_utc']} UTC, {env['wall_min']:.1f} min on "
        f"{env['cores']} cores. Command: `{env['command']}`", "",
        "Every row comes from this one run of this code. gap = (f* - f(x)) / (f* - f(x0)) with "
        "the exact expected profit f (no post-replication noise); seeds 0.."
        f"{args.seeds - 1}, the same for every solver. best evaluated: the best design the "
        "solver evaluated at all. Brackets: 95% percentile bootstrap intervals over seeds "
        "(2000 resamples); paired: the solver minus the peer on the same seeds.", "",
        f"| budget | solver | seeds | mean gap | best evaluated | designs | paired vs "
        f"{args.peer} | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in args.budget_list:
        peer = {r["seed"]: r["gap"] for r in rows if r["budget"] == b and r["solver"] == args.peer}
        for s in args.solver_list:
            rs = sorted((r for r in rows if r["budget"] == b and r["solver"] == s),
                        key=lambda r: r["seed"])
            g = np.array([r["gap"] for r in rs])
            be = np.array([r["best_evaluated_gap"] for r in rs])
            paired = "" if s == args.peer else ci(
                np.array([r["gap"] - peer[r["seed"]] for r in rs]), seed=3, sign="+")
            out.append(
                f"| {b} | {s} | {len(rs)} | {ci(g, 1)} | {ci(be, 2)} | "
                f"{np.mean([r['designs'] for r in rs]):.1f} | {paired} | "
                f"{np.mean([r['wall_s'] for r in rs]):.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=70)
    ap.add_argument("--budgets", default="200", help="comma-separated replication budgets")
    ap.add_argument("--solvers", default="gp_bo,random_search")
    ap.add_argument("--peer", default="random_search")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/results/newsalloc_exact.md"))
    args = ap.parse_args(argv)
    args.budget_list = [int(b) for b in args.budgets.split(",") if b]
    args.solver_list = [s for s in args.solvers.split(",") if s]
    if args.seeds < 2 or args.peer not in args.solver_list:
        ap.error("need --seeds >= 2 and --peer among --solvers")
    from joblib import Parallel, delayed

    code = ["simopt/solvers", "simopt/problems", "simopt/problem.py", "core",
            "bench/newsalloc_exact.py"]
    env = {"commit": provenance.commit(code),
           "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
           "command": "python bench/newsalloc_exact.py " + " ".join(sys.argv[1:]),
           "cores": __import__("os").cpu_count()}
    t0 = time.perf_counter()
    jobs = [(s, b, m) for b in args.budget_list for m in range(args.seeds)
            for s in args.solver_list]
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(run_one)(*j) for j in jobs)
    env["wall_min"] = (time.perf_counter() - t0) / 60
    text = report(rows, args, env)
    out = Path(args.out)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({**env, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
