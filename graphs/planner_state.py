"""State, run settings, resource estimate and report of the experiment-planner graph.

The graph itself is in ``graphs/planner.py``; this file holds what its nodes read and write:

* :class:`PlannerState`: JSON-able values only (the plan, the estimate, launched and finished
  runs keyed by the plan's run keys, the report), so a SqliteSaver checkpoint holds everything a
  resumed planner needs to skip finished runs.
* :class:`PlannerContext`: per-invocation objects (LLM, limits, worker count, runs dir).
* :func:`estimate_resources`: runs x steps x model size -> time and memory on this machine.
* :func:`summarize` / :func:`markdown_table` / :func:`plot_comparison`: the comparison report.
"""

from __future__ import annotations

import json
import math
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, Field

from agents.planner import TRAINING_ALGORITHMS, ExperimentPlan, PlanLimits, PlannedRun
from core.executors import BackgroundJobs


class PlannerState(TypedDict, total=False):
    """The planner graph's state.

    ``launched`` and ``finished`` map a run key (``r00-dpo-s0``: position, algorithm, seed)
    to what the executor reported, so a resumed graph launches only what has not finished.
    """

    request: str
    plan: dict  # ExperimentPlan JSON (validated once the validate node ran)
    estimate: dict  # ResourceEstimate JSON
    refused: str | None  # why nothing was launched (invalid plan, over a limit, not approved)
    approved: bool
    plan_dir: str  # folder of this plan's configs, run folders, report and plot
    launched: dict  # key -> {"config_path", "output_dir", "algorithm"}
    finished: dict  # key -> {"status", "run_id", "metrics", "error"}
    batches: int  # monitor loop counter
    report: dict  # {"markdown", "plot", "rows"}
    events: Annotated[list, operator.add]  # progress events, in order


class ResourceLimits(BaseModel):
    """Resource limits on a whole plan (beyond :class:`agents.planner.PlanLimits`)."""

    max_hours: float = Field(12.0, gt=0, description="Estimated wall time of the whole plan.")
    memory_fraction: float = Field(
        0.8, gt=0, le=1, description="Share of this machine's memory the concurrent runs may use."
    )


@dataclass
class PlannerContext:
    """Per-invocation settings and objects (passed as ``context=`` to invoke/stream).

    Attributes:
        llm: an LLM instance or spec for the parse node (offline when None).
        approve: pause at the approve node with ``interrupt()`` (False: launch directly).
        runs_dir: where plan folders and the registry go (default: settings' runs dir).
        max_workers: concurrent training subprocesses (default: CPU cores).
        limits: run/step/budget limits of the plan.
        resources: time and memory limits of the plan.
        defaults: dotted config keys for training runs where the request is silent.
        on_event: called with every progress event (dict), besides the custom stream.
        jobs: the runs this invocation started in the background (a resumed planner, with a
            new context, launches again what had not ended).
    """

    llm: Any = None
    approve: bool = True
    runs_dir: Path | None = None
    max_workers: int | None = None
    limits: PlanLimits = field(default_factory=PlanLimits)
    resources: ResourceLimits = field(default_factory=ResourceLimits)
    defaults: dict[str, Any] = field(default_factory=dict)
    on_event: Any = None
    jobs: BackgroundJobs = field(default_factory=BackgroundJobs)


# ---------------------------------------------------------------------------------------------
# Resource estimate


class RunEstimate(BaseModel):
    """Estimated cost of one run."""

    key: str
    label: str
    parameters: int
    seconds: float
    memory_gb: float


class ResourceEstimate(BaseModel):
    """Estimated cost of a plan on this machine (rough: calibrated for small CPU models).

    Time per training run: process start-up + steps x (overhead + 6 N T x 1.5 / F), with N
    parameters, T tokens per step (batch x grad_accum x (prompt + response length)), the
    factor 1.5 for the reference/teacher forward pass, and F an assumed CPU throughput.
    Distillation adds the frozen teacher's forward pass (2 N_teacher T per step) and its
    supervised warm-up once per distinct teacher (it is cached by config).
    Memory per run: the torch process + 5 copies of the weights (weights, gradients, two AdamW
    moments, reference) + activations T x width x layers x 34 bytes. Solver runs: a cost per
    replication; SOCRATES: a cost per replication x solver x macro-replication x replica (the
    portfolio races on the replicas dominate). Wall time spreads training runs over ``workers``
    processes; SO runs run one after another in the planner's process.
    """

    n_runs: int
    workers: int
    cpu_count: int
    machine_memory_gb: float
    total_steps: int
    total_budget: int
    seconds: float
    peak_memory_gb: float
    runs: list[RunEstimate]
    fits: bool
    reason: str | None = None

    def describe(self) -> str:
        """One line for people."""
        runs = f"{self.n_runs} run" + ("s" if self.n_runs != 1 else "")
        return (f"{runs}, {self.workers} at a time on {self.cpu_count} cores: about "
                f"{_duration(self.seconds)} and {self.peak_memory_gb:.1f} GB peak memory "
                f"(machine: {self.machine_memory_gb:.0f} GB)")


STARTUP_S = 12.0  # importing torch, transformers and scipy in a fresh subprocess, then eval
STEP_OVERHEAD_S = 0.1  # per step of a tiny model: 0.1-0.2 s measured for the bandit on 2 busy cores
CPU_FLOPS = 2e9  # effective FLOP/s of one core on small matmuls (float32)
PROCESS_GB = 0.6  # resident memory of a torch process before the model
SECONDS_PER_REPLICATION = 2e-4  # built-in problems are vectorized numpy simulations
# SOCRATES races every portfolio solver on every replica, macroreps times, over the budget:
# ~0.02 s per (replication x solver x macrorep x replica), plus fitting and start-up; measured
# 667 s wall (about 210 s of CPU) for budget 200 with the default settings on 2 busy cores.
SOCRATES_SECONDS_PER_UNIT = 0.022
SOCRATES_START_S = 20.0
CHAR_VOCAB = 128


def run_key(index: int, run: PlannedRun) -> str:
    """Stable key of a plan's run: ``r03-mallowspo-theta-s1``."""
    return f"r{index:02d}-{run.algorithm.replace('+', 'plus')}-s{run.seed}"


def machine() -> tuple[int, float]:
    """(CPU cores, memory in GB) of this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume a laptop
        mem = 8.0
    return cores or 1, mem


def model_size(config: dict) -> tuple[int, int, int]:
    """(parameters, width, layers) of a training config's model (tabular: one table)."""
    model = config.get("model", {})
    name = model.get("name", "tiny-llama")
    if name == "tabular":
        bandit = config.get("data", {}).get("bandit", {})
        return len(bandit.get("phis", [0] * 4)) * int(bandit.get("n_arms", 5)), 1, 1
    width, layers, vocab = int(model.get("hidden_size", 64)), int(model.get("num_layers", 2)), 0
    path = Path(name) / "config.json"
    if path.is_file():  # a local HF model: read its size from its config
        hf = json.loads(path.read_text())
        width = int(hf.get("hidden_size", hf.get("n_embd", width)))
        layers = int(hf.get("num_hidden_layers", hf.get("n_layer", layers)))
        vocab = int(hf.get("vocab_size", 32000))
    vocab = vocab or CHAR_VOCAB
    return 12 * layers * width * width + 2 * vocab * width, width, layers


def estimate_resources(plan: ExperimentPlan, max_workers: int | None = None,
                       limits: ResourceLimits | None = None) -> ResourceEstimate:
    """Estimate time and memory of ``plan`` on this machine and check them against ``limits``."""
    limits = limits or ResourceLimits()
    cores, mem_gb = machine()
    n_train = sum(r.algorithm in TRAINING_ALGORITHMS for r in plan.runs)
    workers = max(1, min(max_workers or cores, n_train or 1))
    estimates: list[RunEstimate] = []
    total_steps = total_budget = 0
    teachers_trained: set[str] = set()
    for i, run in enumerate(plan.runs):
        cfg = run.config
        if run.algorithm in TRAINING_ALGORITHMS:
            n, width, layers = model_size(cfg)
            data = cfg.get("data", {})
            tokens = int(cfg.get("batch_size", 8)) * int(cfg.get("grad_accum", 1)) * (
                int(data.get("max_prompt_length", 64)) + int(data.get("max_response_length", 64))
            )
            steps = int(cfg.get("max_steps", 100))
            total_steps += steps
            seconds = STARTUP_S + steps * (STEP_OVERHEAD_S + 6 * n * tokens * 1.5 / CPU_FLOPS)
            memory = PROCESS_GB + (5 * 4 * n + tokens * width * layers * 34) / 2**30
            teacher = (cfg.get("distill") or {}).get("teacher")
            if isinstance(teacher, dict):  # distillation: a frozen teacher, SFT-trained once
                n_t, _, _ = model_size({"model": {**teacher, "name": "tiny-llama"}})
                seconds += steps * 2 * n_t * tokens / CPU_FLOPS
                memory += 4 * n_t / 2**30
                key = json.dumps(teacher, sort_keys=True)
                if key not in teachers_trained:  # cached by config: the first run pays
                    teachers_trained.add(key)
                    sft_tokens = int(teacher.get("sft_batch_size", 64)) * 32
                    seconds += int(teacher.get("sft_steps", 0)) * (
                        STEP_OVERHEAD_S + 6 * n_t * sft_tokens / CPU_FLOPS)
        else:
            budget = int(cfg.get("budget", 0))
            total_budget += budget
            if run.algorithm == "socrates":
                units = budget * len(cfg.get("solvers") or [0] * 7) * int(
                    cfg.get("macroreps", 2)) * int(cfg.get("n_replicas", 3))
                seconds = SOCRATES_START_S + units * SOCRATES_SECONDS_PER_UNIT
            else:
                seconds = 0.5 + budget * SECONDS_PER_REPLICATION
            memory = 0.3
            n = 0
        estimates.append(RunEstimate(key=run_key(i, run), label=run.label, parameters=n,
                                     seconds=seconds, memory_gb=memory))
    train_s = sum(e.seconds for e, r in zip(estimates, plan.runs, strict=True)
                  if r.algorithm in TRAINING_ALGORITHMS)
    longest = max((e.seconds for e in estimates), default=0.0)
    so_s = sum(e.seconds for e, r in zip(estimates, plan.runs, strict=True)
               if r.algorithm not in TRAINING_ALGORITHMS)
    seconds = max(train_s / workers, longest if n_train else 0.0) + so_s
    peak = sum(sorted((e.memory_gb for e in estimates), reverse=True)[:workers])
    reason = None
    if seconds > limits.max_hours * 3600:
        reason = (f"estimated time {_duration(seconds)} is over the limit of "
                  f"{limits.max_hours:g} h; ask for fewer runs or steps")
    elif peak > limits.memory_fraction * mem_gb:
        reason = (f"estimated peak memory {peak:.1f} GB is over {limits.memory_fraction:.0%} of "
                  f"this machine's {mem_gb:.0f} GB; use a smaller model or fewer workers")
    return ResourceEstimate(
        n_runs=len(plan.runs), workers=workers, cpu_count=cores, machine_memory_gb=mem_gb,
        total_steps=total_steps, total_budget=total_budget, seconds=seconds,
        peak_memory_gb=peak, runs=estimates, fits=reason is None, reason=reason,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# Report


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """Mean and half-width of the Student-t interval over seeds (None for a single value).

    ``half = t_{(1+level)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation.
    """
    from scipy import stats

    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n))


def summarize(plan: ExperimentPlan, finished: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per run group (label): n, mean and interval of the metric, baseline, failures."""
    metric = plan.comparison.metric
    groups: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(plan.runs):
        g = groups.setdefault(run.label, {"label": run.label, "algorithm": run.algorithm,
                                          "values": [], "failed": 0, "missing": 0,
                                          "baseline": run.algorithm in
                                          plan.comparison.baselines})
        res = finished.get(run_key(i, run))
        if res is None or res.get("status") != "finished":
            g["failed"] += 1
            continue
        value = (res.get("metrics") or {}).get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            g["values"].append(float(value))
        else:
            g["missing"] += 1
    rows = []
    for g in groups.values():
        mean, half = t_interval(g["values"]) if g["values"] else (None, None)
        rows.append({**g, "n": len(g["values"]), "mean": mean, "half_width": half})
    base = next((r for r in rows if r["baseline"] and r["mean"] is not None), None)
    for r in rows:
        r["delta"] = (r["mean"] - base["mean"] if base is not None and r["mean"] is not None
                      and r is not base else None)
    return rows


def markdown_table(plan: ExperimentPlan, rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (mean +- 95% t-interval over seeds)."""
    metric, better = plan.comparison.metric, plan.comparison.mode
    lines = [
        f"| run | seeds | {metric} ({'higher' if better == 'max' else 'lower'} is better) "
        f"| vs baseline | failed |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["mean"] is None:
            value = "n/a"
        elif r["half_width"] is None:
            value = f"{r['mean']:.4g} (1 seed)"
        else:
            value = f"{r['mean']:.4g} ± {r['half_width']:.2g}"
        delta = "baseline" if r["baseline"] else (
            f"{r['delta']:+.4g}" if r["delta"] is not None else "")
        failed = str(r["failed"] + r["missing"]) if r["failed"] or r["missing"] else "0"
        lines.append(f"| {r['label']} | {r['n']} | {value} | {delta} | {failed} |")
    return "\n".join(lines)


def plot_comparison(plan: ExperimentPlan, rows: list[dict[str, Any]], path: Path) -> Path:
    """Bar chart of the metric per group with the 95% interval as error bars (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["mean"] is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(shown) + 2), 3.6))
    xs = range(len(shown))
    ax.bar(xs, [r["mean"] for r in shown],
           yerr=[r["half_width"] or 0.0 for r in shown], capsize=4,
           color=["#999999" if r["baseline"] else "#3b75af" for r in shown])
    for x, r in zip(xs, shown, strict=True):  # the seeds themselves, so the spread is visible
        ax.scatter([x] * len(r["values"]), r["values"], color="black", s=10, zorder=3)
    ax.set_xticks(list(xs), [r["label"] for r in shown], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(plan.comparison.metric)
    ax.set_title("mean ± 95% interval over seeds (grey: baseline)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
