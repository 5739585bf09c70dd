"""Torch training backend: configs, one training loop, trainers, runs. No LLM inside.

``train(config)`` validates a config (object, dict or YAML path), creates the run folder and its
registry row, builds the algorithm from :data:`training.trainers.TRAINERS`, runs
:class:`training.loop.TrainingLoop`, and writes ``summary.json``::

    from training import train
    result = train({"algorithm": "mallowspo-theta", "max_steps": 20})
    result.metrics["reward/accuracy"]
"""

from __future__ import annotations

import json
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.run_folder import write_summary

__all__ = ["RunResult", "train"]


@dataclass
class RunResult:
    """Outcome of :func:`train`.

    Attributes:
        run_id: registry id of the run.
        output_dir: the run folder (config.yaml, metrics.jsonl, checkpoints/, summary.json).
        metrics: the final metrics row merged with the last evaluation.
        status: ``finished`` (a failed run raises instead of returning).
    """

    run_id: str
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "finished"


def _as_config(config: Any, overrides: list[str] | None):
    from training.config import RunConfig, apply_overrides, parse_config, read_yaml

    if isinstance(config, RunConfig):
        if overrides:
            return parse_config(apply_overrides(config.model_dump(mode="json"), overrides))
        return config
    if isinstance(config, str | Path):
        return parse_config(apply_overrides(read_yaml(config), overrides or []), str(config))
    if isinstance(config, dict):
        return parse_config(apply_overrides(config, overrides or []))
    raise InputError(f"train() takes a config object, dict or YAML path, not "
                     f"{type(config).__name__}")


def train(config: Any, *, overrides: list[str] | None = None, run_id: str | None = None,
          progress: bool = False) -> RunResult:
    """Run one training job end to end and record it in the registry.

    Args:
        config: a :class:`training.config.RunConfig`, a dict, or the path of a YAML file.
        overrides: ``key=value`` items applied on top (YAML-typed values).
        run_id: registry id to use (executors pre-register ``queued`` rows); default: the id
            saved in ``output_dir`` when resuming, else a new one.
        progress: show a progress bar.

    Raises:
        InputError: a bad config or data file (nothing is registered).
        training.loop.NonFiniteLossError: the run diverged (status ``failed``, last good
            checkpoint kept).
    """
    from training.config import dump_config
    from training.loop import TrainingLoop
    from training.runs import RunRegistry, new_run_id, runs_dir
    from training.trainers import get_trainer

    cfg = _as_config(config, overrides)
    builder = get_trainer(cfg.algorithm)
    output_dir = Path(cfg.output_dir) if cfg.output_dir else None
    if run_id is None and output_dir is not None and (output_dir / "run.json").is_file():
        run_id = json.loads((output_dir / "run.json").read_text())["run_id"]
    run_id = run_id or new_run_id(cfg.algorithm)
    output_dir = output_dir or runs_dir() / run_id
    output_dir.mkdir(parents=True, exist_ok=True)
    config_path = output_dir / "config.yaml"
    # under `accelerate launch` / torchrun every process runs this; only rank 0 writes the run's
    # files and registry row (the loop likewise writes metrics and checkpoints on rank 0 only)
    main = int(os.environ.get("RANK", "0")) == 0
    registry = RunRegistry()
    if main:
        dump_config(cfg, config_path)
        (output_dir / "run.json").write_text(json.dumps({"run_id": run_id}))
        registry.create(run_id, cfg.algorithm, status="running", config_path=str(config_path),
                        output_dir=str(output_dir.resolve()), name=cfg.name)
    summary: dict[str, Any] = {"run_id": run_id, "algorithm": cfg.algorithm, "name": cfg.name}
    try:
        algorithm = builder(cfg, output_dir)
        metrics = TrainingLoop(cfg, algorithm, output_dir, progress=progress).run()
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        summary.update(status="failed", error=error, traceback=traceback.format_exc()[-4000:])
        if main:
            write_summary(output_dir, summary)
            registry.set_status(run_id, "failed", error=error)
        raise
    summary.update(status="finished", steps=cfg.max_steps, metrics=metrics)
    if main:
        write_summary(output_dir, summary)  # atomic: a monitor never reads half of it
        registry.set_status(run_id, "finished", metrics=metrics)
    return RunResult(run_id=run_id, output_dir=output_dir, metrics=metrics)
