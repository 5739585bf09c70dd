"""How SOCRATES's portfolio evaluation and the planner scale: measured here, extrapolated beyond.

Measured (this machine):

* wall time of :func:`simopt.portfolio.evaluate_portfolio` on replicas of CNTNEWS-1 (races of
  every solver on every replica for every macro-replication, then the post-replications) while
  one factor varies and the others stay at the base point: solvers ``S``, replicas ``R``,
  macro-replications ``M``; and for the largest point, worker processes ``W`` = 1, 2 (joblib),
  plus 2 Ray tasks at a time on a local Ray instance when ``ray`` is installed;
* the planner's throughput: requests parsed and validated per second by the offline
  :func:`agents.planner.propose_plan` on the test corpus (``tests/data/requests.jsonl``), in
  1 process and in 2 processes.

Extrapolated (labelled as such in the output): a least-squares fit ``T = a + b·S·R·M`` of the
one-worker times (the runs are the unit of work), split by the measured shares of one-worker
time in the runs (``S·R·M`` jobs), the post-replications (``R`` jobs) and the rest (serial):
``T(W) = T(1)·(f_serial + f_runs·ceil(J/W)/J + f_post·ceil(R/W)/R)``. On a shared machine the
measured 2-worker ratio reflects the other jobs' load, so it is reported beside, not used.

Each point is the median of ``--repeats`` timed calls after one untimed warm-up call.

    .venv/bin/python bench/scaling.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import provenance  # noqa: E402

#: the code this bench measures (uncommitted edits there mark the results' commit)
CODE_PATHS = ["simopt", "agents", "graphs", "training", "core", "bench/scaling.py"]
SOLVERS = ["random_search", "nelder_mead", "spsa", "cmaes"]
BASE = {"solvers": 2, "replicas": 2, "macroreps": 2}
LEVELS = [1, 2, 4]
PROBLEM = "CNTNEWS-1"


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: imports, worker pools, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def portfolio_timings(budget: int, n_postreps: int, repeats: int, with_ray: bool) -> dict:
    import simopt
    from core.executors import LocalExecutor, RayExecutor
    from simopt.portfolio import evaluate_portfolio
    from simopt.replicas.ensemble import fit_ensemble

    ensemble = fit_ensemble(simopt.get_problem(PROBLEM), None, n_designs=12, reps_per_design=4,
                            n_bootstrap=2,
                            k=max(LEVELS), seed=0)
    replicas = list(ensemble.replicas)
    weights = np.asarray(ensemble.weights)
    if len(replicas) < max(LEVELS):
        raise SystemExit(f"the ensemble kept {len(replicas)} replicas, need {max(LEVELS)}")

    def run(solvers: int, reps: int, macroreps: int, executor) -> float:
        w = weights[:reps] / weights[:reps].sum()
        return _time(lambda: evaluate_portfolio(
            replicas[:reps], w, SOLVERS[:solvers], budget, macroreps=macroreps, seed=0,
            n_postreps=n_postreps, executor=executor), repeats)

    rows = []
    for factor in ("solvers", "replicas", "macroreps"):
        for level in LEVELS:
            point = {**BASE, factor: level}
            t = run(point["solvers"], point["replicas"], point["macroreps"], LocalExecutor(1))
            rows.append({"vary": factor, **point, "workers": 1, "executor": "local",
                         "runs": point["solvers"] * point["replicas"] * point["macroreps"],
                         "seconds": t})
            print(f"  {factor}={level}: {t:.3f} s", flush=True)
    big = {"solvers": max(LEVELS), "replicas": max(LEVELS), "macroreps": 2}
    big_runs = big["solvers"] * big["replicas"] * big["macroreps"]
    # the share of one-worker wall time spent inside executor.map (the independent jobs):
    # what more workers can divide, whatever else runs on the machine
    timed = MapTimer(LocalExecutor(1))
    run(big["solvers"], big["replicas"], big["macroreps"], timed)  # warm-up inside
    timed.seconds.clear()
    t0 = time.perf_counter()
    evaluate_portfolio(replicas, weights / weights.sum(), SOLVERS[: big["solvers"]], budget,
                       macroreps=big["macroreps"], seed=0, n_postreps=n_postreps, executor=timed)
    total = time.perf_counter() - t0
    runs_s, post_s = timed.seconds  # evaluate_portfolio: the runs' map, the post-reps' map
    # 1 and 2 workers interleaved, so drifting load from other jobs hits both alike
    by_workers: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            by_workers[workers].append(run(big["solvers"], big["replicas"], big["macroreps"],
                                           LocalExecutor(workers)))
    for workers, times in by_workers.items():
        t = statistics.median(times)
        rows.append({"vary": "workers", **big, "workers": workers, "executor": "local",
                     "runs": big_runs, "seconds": t})
        print(f"  workers={workers}: {t:.3f} s", flush=True)
    if with_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        t = run(big["solvers"], big["replicas"], big["macroreps"], RayExecutor())
        ray.shutdown()
        rows.append({"vary": "workers", **big, "workers": 2, "executor": "ray (local, 2 CPUs)",
                                  "runs": big_runs, "seconds": t, "ray_init_seconds": ray_start})
        print(f"  ray 2 CPUs: {t:.3f} s (init {ray_start:.1f} s, not included)", flush=True)
    return {"problem": PROBLEM, "budget": budget, "n_postreps": n_postreps,
            "solvers": SOLVERS, "rows": rows,
            "runs_fraction": runs_s / total, "postreps_fraction": post_s / total,
            "fraction_total_seconds": total}


class MapTimer:
    """An executor that times the jobs of another (for the parallelizable share)."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, []

    def map(self, jobs):
        t0 = time.perf_counter()
        out = self.inner.map(jobs)
        self.seconds.append(time.perf_counter() - t0)
        return out


def _plan_all(requests: list[str]) -> int:
    from agents.planner import propose_plan

    for r in requests:
        propose_plan(r)
    return len(requests)


def planner_throughput(rounds: int, repeats: int) -> dict:
    path = Path(__file__).resolve().parents[1] / "tests" / "data" / "requests.jsonl"
    corpus = [json.loads(line)["request"] for line in path.read_text().splitlines()
              if line.strip()]
    requests = corpus * rounds
    out = {"corpus": len(corpus), "requests_per_call": len(requests)}
    out["one_process_rps"] = len(requests) / _time(lambda: _plan_all(requests), repeats)
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_plan_all, [corpus[:2], corpus[:2]])  # warm the workers' imports
        halves = [requests[0::2], requests[1::2]]
        t = _time(lambda: pool.map(_plan_all, halves), repeats)
    out["two_process_rps"] = len(requests) / t
    print(f"  planner: {out['one_process_rps']:.0f} req/s (1 process), "
          f"{out['two_process_rps']:.0f} req/s (2 processes)", flush=True)
    return out


def extrapolate(port: dict, planner: dict) -> dict:
    one = [r for r in port["rows"] if r["workers"] == 1 and r["vary"] != "workers"]
    x = np.array([r["runs"] for r in one], dtype=float)
    y = np.array([r["seconds"] for r in one])
    b, a = np.polyfit(x, y, 1)
    w = {r["workers"]: r["seconds"] for r in port["rows"]
         if r["vary"] == "workers" and r["executor"] == "local"}
    f_runs, f_post = port["runs_fraction"], port["postreps_fraction"]
    f_serial = max(0.0, 1.0 - f_runs - f_post)

    def wall(s: int, r: int, m: int, cores: int) -> float:
        # runs: S·R·M jobs over the cores; post-replications: one job per replica
        jobs = s * r * m
        t1 = a + b * jobs
        return t1 * (f_serial + f_runs * math.ceil(jobs / cores) / jobs
                     + f_post * math.ceil(r / cores) / r)

    cores = [1, 2, 4, 8, 16, 32]
    return {
        "fit": {"a_seconds": float(a), "b_seconds_per_run": float(b),
                "max_abs_residual": float(np.max(np.abs(a + b * x - y)))},
        "measured_two_worker_speedup": w[1] / w[2],
        "fractions": {"runs": f_runs, "postreps": f_post, "serial": f_serial},
        "model_two_worker_speedup": wall(4, 4, 2, 1) / wall(4, 4, 2, 2),
        "portfolio_seconds_by_cores": {
            f"{s}x{r}x{m}": {n: wall(s, r, m, n) for n in cores}
            for s, r, m in [(7, 3, 2), (7, 5, 5), (10, 10, 10)]
        },
        "planner_rps_by_cores": {n: planner["one_process_rps"] * n for n in cores},
    }


def environment() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average_at_end": load, "platform": platform.platform()}


def write_markdown(res: dict, path: Path) -> None:
    port, plan, ext = res["portfolio"], res["planner"], res["extrapolated"]
    env = res["environment"]
    lines = [
        "# Scaling: SOCRATES portfolio evaluation and the planner",
        "",
        provenance.describe(res["record"]),
        "",
        f"Measured on {env['cpus']} CPU cores ({env['platform']}, Python {env['python']}); "
        f"1-minute load average {env['load_average_at_start']:.1f} at the start, "
        f"{env['load_average_at_end'][0]:.1f} at the end (a load above the core count means "
        "other work shared the machine: absolute times are then pessimistic; the ratios are "
        "the point).",
        f"Each time is the median of {res['repeats']} calls after a warm-up call.",
        "",
        f"## Portfolio evaluation on replicas (measured; {port['problem']} replicas, budget "
        f"{port['budget']} per run, {port['n_postreps']} post-replications per design)",
        "",
        f"Base point: {BASE['solvers']} solvers x {BASE['replicas']} replicas x "
        f"{BASE['macroreps']} macro-replications; one factor varied at a time. Solvers in order: "
        f"{', '.join(port['solvers'])}.",
        "",
        "| varied | solvers | replicas | macroreps | runs | workers | executor | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in port["rows"]:
        lines.append(f"| {r['vary']} | {r['solvers']} | {r['replicas']} | {r['macroreps']} | "
                     f"{r['runs']} | {r['workers']} | {r['executor']} | {r['seconds']:.3f} |")
    ray_rows = [r for r in port["rows"] if "ray_init_seconds" in r]
    if ray_rows:
        lines.append("")
        lines.append(f"Ray's local start ({ray_rows[0]['ray_init_seconds']:.1f} s) is not in the "
                     "time; each task also pays a worker's first import of the package. The Ray "
                     "and joblib rows were taken a minute or two apart: compare them with care.")
    fit = ext["fit"]
    lines += [
        "",
        f"Fit of the one-worker times: T = {fit['a_seconds']:.3f} s + "
        f"{fit['b_seconds_per_run']:.4f} s x (solvers x replicas x macroreps) "
        f"(largest residual {fit['max_abs_residual']:.3f} s): wall time grows linearly in the "
        "number of runs, whichever factor adds them (solvers differ in cost per run, so the "
        "solvers axis bends with which solvers are added).",
        f"Where the one-worker time goes at the largest point: "
        f"{100 * ext['fractions']['runs']:.1f}% in the solver runs (S x R x M independent jobs), "
        f"{100 * ext['fractions']['postreps']:.1f}% in the post-replications (one job per "
        f"replica), {100 * ext['fractions']['serial']:.1f}% in the rest (gap curves, summary). "
        f"On 2 free cores that allows {ext['model_two_worker_speedup']:.2f}x. Measured here "
        f"with 2 joblib workers: {ext['measured_two_worker_speedup']:.2f}x (1 and 2 workers "
        "interleaved): joblib pickles each job's replica (fitted regression models) to its "
        "worker, and any other load on the cores (load average above) competes with the "
        "second worker.",
        "",
        "## Planner throughput (measured)",
        "",
        f"Offline `propose_plan` (parse + validate every run config and the limits) on the "
        f"{plan['corpus']}-request test corpus, {plan['requests_per_call']} requests per call:",
        "",
        f"- 1 process: **{plan['one_process_rps']:.0f} requests/s**",
        f"- 2 processes: **{plan['two_process_rps']:.0f} requests/s**",
        "",
        "## Extrapolated (not measured)",
        "",
        "From the fit and the measured shares above (runs split over min(cores, S x R x M) "
        "workers, post-replications over min(cores, R)); assumes one free core per worker, the "
        "same per-run cost, and no scheduling or transfer overheads (Ray adds a worker start "
        "and the replica transfer per task). Portfolio wall seconds:",
        "",
        "| solvers x replicas x macroreps | " + " | ".join(
            f"{n} cores" for n in next(iter(ext["portfolio_seconds_by_cores"].values()))) + " |",
        "|---|" + "---|" * len(next(iter(ext["portfolio_seconds_by_cores"].values()))),
    ]
    for key, by in ext["portfolio_seconds_by_cores"].items():
        lines.append(f"| {key} | " + " | ".join(f"{t:.1f}" for t in by.values()) + " |")
    lines += [
        "",
        "Planner requests/s (extrapolated: requests are independent and share nothing, so "
        "linear in free cores from the 1-process rate; the 2-process figure above also pays "
        "process start and any other load on the 2 cores): " + ", ".join(
            f"{n} cores ~{v:.0f}" for n, v in ext["planner_rps_by_cores"].items()) + ".",
        "",
        "7x3x2 is the SOCRATES default portfolio (7 solvers, 3 replicas, 2 macro-replications)."
        " The per-run cost is the mean over the four measured solvers; gp_bo (in the default "
        "portfolio) costs more per run, so read the rows as lower bounds for portfolios "
        "with it.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--postreps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--planner-rounds", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite scaling.md from the saved scaling.json")
    args = parser.parse_args()
    record = provenance.run_record("bench/scaling.py", sys.argv[1:], CODE_PATHS)
    load_start = os.getloadavg()[0]
    if args.markdown_only:
        out = Path(args.out)
        write_markdown(json.loads((out / "scaling.json").read_text()), out / "scaling.md")
        return
    try:
        import ray  # noqa: F401

        with_ray = not args.no_ray
    except ImportError:
        with_ray = False

    print("portfolio evaluation:", flush=True)
    port = portfolio_timings(args.budget, args.postreps, args.repeats, with_ray)
    print("planner:", flush=True)
    planner = planner_throughput(args.planner_rounds, args.repeats)
    res = {"portfolio": port, "planner": planner, "repeats": args.repeats,
           "extrapolated": extrapolate(port, planner), "record": record,
           "environment": {**environment(), "load_average_at_start": load_start}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(res, indent=2, default=float))
    write_markdown(res, out / "scaling.md")
    print(f"wrote {out / 'scaling.md'} and {out / 'scaling.json'}")


if __name__ == "__main__":
    main()
