"""Stop-gradient OPD versus OPD+ for several f-divergences on synthetic arithmetic.

A small teacher (tiny-llama 64x2) is trained by SFT on single-digit addition and cached; a
smaller student (tiny-llama 32x2) gets a short supervised warm start (so it answers with digits
and EOS but mostly wrongly) and is then distilled on the teacher with each divergence and each
estimator. Every run uses the same student initialisation, prompts and seed; only the advantage
differs (``opd``: ``A_t = -f(u_t)``; ``opd+``: ``A_t = w_f(u_t) = -f(u_t) + u_t f'(u_t)``).

    .venv/bin/python examples/opd_divergences.py            # a few minutes on 2 CPU cores
    .venv/bin/python examples/opd_divergences.py --steps 200 --divergences reverse_kl js

``bench/opd_study.py`` runs the full comparison and writes the plot and table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY_CONFIG: dict[str, Any] = {
    "model": {"name": "tiny-llama", "hidden_size": 32, "num_layers": 2, "num_heads": 2},
    "data": {"task": "arithmetic", "n_train": 48, "n_eval": 32,
             "arithmetic": {"max_operand": 9, "operations": "+"}},
    "batch_size": 16,
    "optimizer": {"lr": 3e-3},
    "device": "cpu",
    "distill": {"max_new_tokens": 4, "rollouts_per_prompt": 4, "student_sft_steps": 60,
                "eval_samples": 2,
                "teacher": {"name": "tiny-llama", "hidden_size": 64, "num_layers": 2,
                            "num_heads": 4, "sft_steps": 800}},
}


def run_one(algorithm: str, divergence: str, steps: int, eval_every: int, seed: int,
            workdir: Path) -> list[dict[str, Any]]:
    """Train one student; return its metrics rows (``training.loop.read_metrics``)."""
    from training.config import parse_config
    from training.loop import TrainingLoop, read_metrics
    from training.trainers.distill import DistillAlgorithm

    out = workdir / f"{algorithm.replace('+', 'plus')}-{divergence}-s{seed}"
    cfg = parse_config({
        **STUDY_CONFIG,
        "algorithm": algorithm,
        "seed": seed,
        "max_steps": steps,
        "eval_every": eval_every,
        "output_dir": str(out),
        "distill": {**STUDY_CONFIG["distill"], "divergence": divergence},
    })
    algo = DistillAlgorithm(cfg, out)
    algo.accelerator = None
    start = {"step": 0, **algo.evaluate()}  # the warm-started student, before distillation
    TrainingLoop(cfg, algo, out).run()
    return [start, *read_metrics(out / "metrics.jsonl")]


def _run_task(task: tuple) -> list[dict[str, Any]]:
    algorithm, divergence, steps, eval_every, seed, workdir, config = task
    import torch

    torch.set_num_threads(1)
    STUDY_CONFIG.update(config)  # a spawned worker starts from the module's defaults
    return run_one(algorithm, divergence, steps, eval_every, seed, Path(workdir))


def run_study(divergences: list[str], estimators: list[str], steps: int, eval_every: int,
              seeds: list[int], workdir: Path, log: Any = print,
              jobs: int = 1) -> dict[tuple, list[dict]]:
    """Every (algorithm, divergence, seed) run; keys ``(algorithm, divergence, seed)``.

    ``jobs > 1`` runs that many trainings at once in spawned processes (one torch thread
    each); the teacher is trained first so workers only load it from the cache.
    """
    keys = [(a, d, s) for d in divergences for a in estimators for s in seeds]
    tasks = [(a, d, steps, eval_every, s, str(workdir), STUDY_CONFIG) for a, d, s in keys]
    results = {}
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        results[keys[0]] = _run_task(tasks[0])  # trains and caches the teacher
        _log_run(log, keys[0], results[keys[0]])
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            for key, rows in zip(keys[1:], ex.map(_run_task, tasks[1:]), strict=True):
                results[key] = rows
                _log_run(log, key, rows)
        return results
    for key, task in zip(keys, tasks, strict=True):
        results[key] = _run_task(task)
        _log_run(log, key, results[key])
    return results


def _log_run(log: Any, key: tuple, rows: list[dict[str, Any]]) -> None:
    algorithm, divergence, seed = key
    last = [r for r in rows if "eval/accuracy" in r][-1]
    log(f"{algorithm:4s} {divergence:10s} seed {seed}: accuracy "
        f"{rows[0]['eval/accuracy']:.2f} -> {last['eval/accuracy']:.2f}, reverse KL "
        f"{rows[0]['eval/reverse_kl']:.3f} -> {last['eval/reverse_kl']:.3f}, "
        f"forward KL {rows[0]['eval/forward_kl']:.3f} -> {last['eval/forward_kl']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--divergences", nargs="+", default=["reverse_kl", "forward_kl", "js"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:  # run folders; the teacher is cached in runs/
        run_study(args.divergences, ["opd", "opd+"], args.steps, args.eval_every, args.seeds,
                  Path(tmp))


if __name__ == "__main__":
    main()
