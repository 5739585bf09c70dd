"""Every trainer family under ``accelerate launch`` with 2 CPU processes (gloo DDP).

One launch trains a few steps of dpo, mallowspo-theta, opd+, gkd, mdm-sft, d1 and diffpo in
sequence through :func:`training.train` (``tests/reliability/dist_train.py``). Checked per
algorithm:

(a) both processes end with bit-identical parameters;
(b) the run equals one process with the same global batch. The loop's sharding rule (every
    process draws all processes' micro-batches in rank order and keeps its own) makes 2
    processes x ``grad_accum`` 1 the same computation as 1 process x ``grad_accum`` 2: the same
    micro-batches, and DDP's gradient ``(g0 + g1) / 2`` against the accumulated
    ``g0 / 2 + g1 / 2``. Halving is exact in binary floating point and a sum of two terms has one
    rounding either way, so the parameters and every logged loss agree to a few ulps; the
    tolerance (``rtol=1e-5, atol=1e-6``) leaves room for that and nothing more (the runs move
    the parameters by ~1e-2, checked).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from tests.reliability.dist_train import digit_reward
from training.config import parse_config
from training.loop import TrainingLoop, read_metrics
from training.trainers import get_trainer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("dist_train.py")
WORLD = 2


def tiny_configs(teacher_cache: str) -> dict[str, dict]:
    """One tiny config per algorithm (2 steps, per-process batch 2, no evaluation)."""
    lm = {"name": "tiny-llama", "hidden_size": 16, "num_layers": 1, "num_heads": 2}
    arith = {"task": "arithmetic", "n_train": 16, "n_eval": 4,
             "arithmetic": {"max_operand": 9, "operations": "+"}}
    teacher = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "sft_steps": 8,
               "sft_batch_size": 16, "sft_examples": 64, "cache_dir": teacher_cache}
    distill = {"max_new_tokens": 3, "rollouts_per_prompt": 2, "eval_samples": 0,
               "teacher": teacher}
    mdm = {"name": "tiny-mdm", "hidden_size": 16, "num_layers": 1, "num_heads": 2}
    sudoku = {"task": "sudoku", "n_train": 16, "n_eval": 2}
    diffusion = {"gen_length": 36, "block_length": 12, "group_size": 2,
                 "eval_thresholds": [1.0], "temperature": 1.0}
    # a large Adam eps keeps the update continuous in the gradient (no sign flips of ~0 grads)
    common = {"max_steps": 2, "batch_size": 2, "eval_every": 0,
              "optimizer": {"lr": 1e-2, "eps": 1e-3}}
    return {
        "dpo": {"algorithm": "dpo", "model": lm, "data": arith, **common},
        "mallowspo-theta": {"algorithm": "mallowspo-theta", "model": lm, "data": arith,
                            "preference": {"sft_steps": 2}, **common},
        "opd+": {"algorithm": "opd+", "model": lm, "data": arith, "distill": distill, **common},
        "gkd": {"algorithm": "gkd", "model": lm, "data": arith, "distill": distill, **common},
        "mdm-sft": {"algorithm": "mdm-sft", "model": mdm, "data": sudoku, "diffusion": diffusion,
                    **common},
        "d1": {"algorithm": "d1", "model": mdm, "data": sudoku, "diffusion": diffusion, **common},
        "diffpo": {"algorithm": "diffpo", "model": mdm, "data": sudoku, "diffusion": diffusion,
                   **common},
    }


def one_process_run(raw: dict, run_dir: Path) -> tuple[dict, dict, list[dict]]:
    """Initial params, final params and metrics rows of a single-process run of ``raw``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the DDP processes: the same kernels, the same roundings
    try:
        cfg = parse_config(raw)
        algo = get_trainer(cfg.algorithm)(cfg, run_dir)
        if cfg.algorithm in ("d1", "diffpo"):
            algo.reward_fn = digit_reward
        before = {k: v.detach().clone() for k, v in algo.model.named_parameters()}
        TrainingLoop(cfg, algo, run_dir).run()
        after = {k: v.detach().clone() for k, v in algo.model.named_parameters()}
    finally:
        torch.set_num_threads(threads)
    return before, after, read_metrics(run_dir / "metrics.jsonl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(spec_path: Path, out_dir: Path) -> subprocess.CompletedProcess:
    """``accelerate launch`` the script on 2 CPU processes (``--multi_gpu`` selects accelerate's
    torch.distributed launcher; with no CUDA device the loop's Accelerator runs gloo on CPU)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    for _ in range(2):  # the free port can be taken by another process before the launch binds
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(WORLD), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               str(SCRIPT), str(spec_path), str(out_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=600)
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            return proc
    return proc


def test_every_trainer_under_two_ddp_processes_equals_one_process(tmp_path):
    specs = tiny_configs(str(tmp_path / "teachers"))
    # one-process references first: they also train the distillation teacher into the cache
    reference = {}
    for name, raw in specs.items():
        accum = WORLD
        reference[name] = one_process_run({**raw, "grad_accum": accum},
                                          tmp_path / "single" / name)

    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(specs))
    out = tmp_path / "ddp"
    proc = launch(spec_path, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    problems = []
    for name, (before, after, rows) in reference.items():
        ranks = [torch.load(out / f"{name}.params_rank{r}.pt") for r in range(WORLD)]
        assert set(ranks[0]) == set(after), name
        for key in after:
            if not torch.equal(ranks[0][key], ranks[1][key]):
                problems.append(f"{name}: processes differ on {key}")
            if not torch.allclose(ranks[0][key], after[key], rtol=1e-5, atol=1e-6):
                gap = float((ranks[0][key] - after[key]).abs().max())
                problems.append(f"{name}: {key} differs from the one-process run by {gap:.2e}")
        moved = max(float((after[k] - before[k]).abs().max()) for k in after)
        if moved < 1e-3:
            problems.append(f"{name}: the parameters barely moved ({moved:.1e}); vacuous check")

        run_dir = Path((out / f"{name}.run_dir").read_text())
        ddp_rows = read_metrics(run_dir / "metrics.jsonl")
        if [r["step"] for r in ddp_rows] != [1, 2]:  # written once, by the main process
            problems.append(f"{name}: metrics steps {[r['step'] for r in ddp_rows]}")
        for ddp_row, row in zip(ddp_rows, rows, strict=False):
            for key in ("loss/total", "optim/grad_norm"):
                if abs(ddp_row[key] - row[key]) > 1e-6 + 1e-5 * abs(row[key]):
                    problems.append(f"{name} step {row['step']}: {key} {ddp_row[key]} (DDP) "
                                    f"vs {row[key]} (one process)")
        summary = json.loads((run_dir / "summary.json").read_text())
        if summary["status"] != "finished":
            problems.append(f"{name}: summary status {summary['status']}")
    assert not problems, "\n".join(problems)

    # one run folder and one registry row per job, shared by both processes
    from training.runs import RunRegistry

    rows = RunRegistry(out / "registry.sqlite").list()
    assert sorted(r.name for r in rows) == sorted(specs)
    assert all(r.status == "finished" for r in rows)
