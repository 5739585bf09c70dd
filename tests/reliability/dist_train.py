"""Trains a list of tiny configs, one after another; launched by ``accelerate launch``.

``python dist_train.py SPEC.json OUT_DIR``: SPEC holds ``{name: config dict}``. Every process
calls :func:`training.train` on each config (runs and registry under ``OUT_DIR``), then saves its
own copy of the trained parameters as ``OUT_DIR/<name>.params_rank<r>.pt``, and the main process
writes the run folder's path to ``OUT_DIR/<name>.run_dir``. The test compares the processes with
each other and with one-process runs. Used by ``tests/reliability/test_distributed.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def digit_reward(text: str, problem: object) -> float:
    """A reward that varies across an untrained model's samples (so RL gradients are not 0)."""
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


def main(spec_path: str, out_dir: str) -> None:
    """Train every config of the spec through :func:`training.train` (the public entry)."""
    from training import train
    from training.loop import TrainingLoop

    torch.set_num_threads(1)
    os.environ["SOCRATES_RUNS_DIR"] = out_dir
    loops: list[TrainingLoop] = []
    plain_run = TrainingLoop.run

    def recording_run(self: TrainingLoop) -> dict:
        loops.append(self)
        if self.cfg.algorithm in ("d1", "diffpo"):
            self.algorithm.reward_fn = digit_reward
        return plain_run(self)

    TrainingLoop.run = recording_run  # keeps each process's loop to read its parameters after
    spec = json.loads(Path(spec_path).read_text())
    for name, raw in spec.items():
        result = train({**raw, "name": name})
        loop = loops[-1]
        rank, world = loop.accelerator.process_index, loop.accelerator.num_processes
        if world != 2:
            raise SystemExit(f"expected 2 DDP processes, got {world}")
        params = {k: v.detach().cpu() for k, v in loop.algorithm.model.named_parameters()}
        torch.save(params, Path(out_dir) / f"{name}.params_rank{rank}.pt")
        if rank == 0:
            (Path(out_dir) / f"{name}.run_dir").write_text(str(result.output_dir))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
