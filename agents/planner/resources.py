"""What a plan would cost on this machine, checked beside the validator before anything runs.

:func:`estimate_resources` turns runs x steps x model size (training) and budget x portfolio
(simulation optimization) into wall time and peak memory on this machine's cores and memory,
and refuses a plan over :class:`ResourceLimits`. The constants are rough calibrations on small
CPU models, each with what it was measured on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

from agents.planner import catalog
from agents.planner.schema import ExperimentPlan, run_key


class ResourceLimits(BaseModel):
    """Resource limits on a whole plan (beyond :class:`agents.planner.schema.PlanLimits`)."""

    max_hours: float = Field(12.0, gt=0, description="Estimated wall time of the whole plan.")
    memory_fraction: float = Field(
        0.8, gt=0, le=1, description="Share of this machine's memory the concurrent runs may use."
    )


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
    n_train = sum(catalog.is_training(r.algorithm) for r in plan.runs)
    workers = max(1, min(max_workers or cores, n_train or 1))
    estimates: list[RunEstimate] = []
    total_steps = total_budget = 0
    teachers_trained: set[str] = set()
    for i, run in enumerate(plan.runs):
        cfg = run.config
        if catalog.is_training(run.algorithm):
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
                  if catalog.is_training(r.algorithm))
    longest = max((e.seconds for e in estimates), default=0.0)
    so_s = sum(e.seconds for e, r in zip(estimates, plan.runs, strict=True)
               if not catalog.is_training(r.algorithm))
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
