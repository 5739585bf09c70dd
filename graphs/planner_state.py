"""State, run settings and report of the experiment-planner graph.

The graph itself is in ``graphs/planner.py``; this file holds what its nodes read and write:

* :class:`PlannerState`: JSON-able values only (the plan, the estimate, launched and finished
  runs keyed by the plan's run keys, the report), so a SqliteSaver checkpoint holds everything a
  resumed planner needs to skip finished runs.
* :class:`PlannerContext`: per-invocation objects (LLM, limits, worker count, runs dir, the
  background jobs it started).
* :func:`summarize` / :func:`markdown_table` / :func:`plot_comparison`: the comparison report.

The resource estimate lives beside the plan validator, in :mod:`agents.planner.resources`; its
names stay importable from here.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from scipy import stats

from agents.planner import ExperimentPlan, PlanLimits
from agents.planner.resources import (
    CHAR_VOCAB,
    CPU_FLOPS,
    PROCESS_GB,
    SECONDS_PER_REPLICATION,
    SOCRATES_SECONDS_PER_UNIT,
    SOCRATES_START_S,
    STARTUP_S,
    STEP_OVERHEAD_S,
    ResourceEstimate,
    ResourceLimits,
    RunEstimate,
    estimate_resources,
    machine,
    model_size,
)
from agents.planner.schema import run_key
from core.executors import BackgroundJobs
from simopt.metrics import pyplot

__all__ = [
    "CHAR_VOCAB", "CPU_FLOPS", "PROCESS_GB", "SECONDS_PER_REPLICATION",
    "SOCRATES_SECONDS_PER_UNIT", "SOCRATES_START_S", "STARTUP_S", "STEP_OVERHEAD_S",
    "PlannerContext", "PlannerState", "ResourceEstimate", "ResourceLimits", "RunEstimate",
    "estimate_resources", "machine", "markdown_table", "model_size", "plot_comparison",
    "run_key", "summarize", "t_interval",
]


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
# Report


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """Mean and half-width of the Student-t interval over seeds (None for a single value).

    ``half = t_{(1+level)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation.
    """
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
    plt = pyplot()
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
