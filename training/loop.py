"""The one training loop every trainer (preference, distillation, diffusion) runs.

An algorithm supplies a small object (:class:`Algorithm`): its trainable ``model``, how to draw
the next micro-batch, and the loss on it. The loop owns everything else, in this order per step:

    for micro-batch in 1..grad_accum:  batch -> loss -> check finite -> backward(loss / grad_accum)
    clip grad norm -> check finite -> optimizer.step -> scheduler.step -> zero_grad
    metrics row -> maybe evaluate -> maybe checkpoint

Devices and DDP go through ``accelerate`` (CPU here, CUDA where present). Under
``accelerate launch`` with ``W`` processes every process runs this loop: the algorithm's
``model`` is the DDP-wrapped module only while ``compute_loss`` runs (sampling, rollouts and
evaluation see the plain module, so they never enter DDP's collectives); each process draws its
shard of the global batch (see :meth:`Algorithm.next_batch`), so ``W`` processes with
``grad_accum = A`` take the same update as one process with ``grad_accum = A·W``; metrics are
averaged over processes and written, evaluated and checkpointed by the main process only.

Checkpoints hold the model, optimizer, scheduler, every RNG state, the step and the algorithm's
own data position, so resuming continues bit-identically on CPU. Metrics rows are appended as
whole lines (one ``write`` each); on resume ``metrics.jsonl`` is cut back to the checkpoint step
(and a line torn by a kill is dropped), so no row is written twice. A non-finite loss or gradient
stops the run (every process) with :class:`NonFiniteLossError`; the last good checkpoint is kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from core.errors import InputError, SocratesError
from core.run_folder import read_metrics  # its home is the run-folder contract
from training.config import RunConfig

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.pt$")
SUMMED_METRICS = ("perf/tokens",)  # summed over micro-batches; every other metric is averaged


class NonFiniteLossError(SocratesError):
    """The loss or the gradient norm became NaN/inf; the run stopped at the last good state."""


@runtime_checkable
class Algorithm(Protocol):
    """What a trainer gives the loop.

    Attributes:
        model: the trainable module. The loop replaces it by the ``accelerate``-prepared module
            (DDP-wrapped when distributed) before the first step; use ``self.model`` for forwards.
    """

    model: nn.Module

    def setup(self, accelerator: Any) -> None:
        """Move auxiliary models/tensors (reference, teacher) to ``accelerator.device``."""

    def next_batch(self, step: int, rng: np.random.Generator) -> Any:
        """The next micro-batch. Must be a function of the algorithm's state and ``rng`` only.

        Under DDP every process calls this with identical algorithm state and ``rng``; each must
        advance both exactly as one process would for all ``W`` shards (draw ``W`` micro-batches'
        worth of examples and seeds) and return shard ``accelerator.process_index``. Then ``W``
        processes equal one process with ``W`` times the gradient accumulation (see
        :func:`shard_of`). ``self.model`` is the plain (unwrapped) module here.
        """

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar mean loss of the micro-batch (with grad) and float metrics (``loss/*`` ...)."""

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics, namespaced ``eval/*``; empty dict when there is nothing to do."""

    def state_dict(self) -> dict[str, Any]:
        """The algorithm's own resumable state (data position, caches' keys ...)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def shard_of(accelerator: Any) -> tuple[int, int]:
    """``(rank, world)`` of this process (``(0, 1)`` without an accelerator or DDP).

    The sharding rule every algorithm follows: draw the micro-batches of all ``world``
    processes in rank order from the shared state, keep number ``rank``. Micro-batch ``m`` of
    rank ``r`` is then micro-batch ``m·world + r`` of a one-process run with
    ``grad_accum·world`` accumulation steps, and DDP's gradient mean equals that run's
    accumulated mean.
    """
    if accelerator is None:
        return 0, 1
    # stand-ins that carry only a device (tests, single-device callers) are one process
    return (int(getattr(accelerator, "process_index", 0)),
            int(getattr(accelerator, "num_processes", 1)))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed python/numpy/torch global RNGs for the run and restore the caller's afterwards.

    Libraries inside the run (dropout, peft init) draw from global generators; this makes them
    reproducible without leaking a global seed into the calling program.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def make_accelerator(cfg: RunConfig) -> Any:
    """An ``accelerate.Accelerator`` for the config's device and precision."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda was asked for but no CUDA device is visible; use auto")
    from accelerate.utils import DistributedDataParallelKwargs

    kwargs = dict(
        cpu=cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()),
        mixed_precision="bf16" if cfg.precision == "bf16" else "no",
        # DDP's default, stated: diffpo's two-stage surrogate runs two forwards before one
        # backward, which find_unused_parameters=True rejects ("mark a variable ready only
        # once"); every trainable parameter must therefore take part in each loss
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
    )
    try:
        return Accelerator(**kwargs)
    except ValueError:
        # A previous run in this process fixed another precision; single-process state only.
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(**kwargs)


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer) -> Any:
    """Multiplier on the peak lr at scheduler step ``s`` (``W`` warmup, ``N`` max steps).

    ``s < W``: ``s / W`` (linear warmup from 0); afterwards, with ``p = (s - W) / (N - W)``:
    constant ``1``, linear ``1 - p``, cosine ``(1 + cos(pi p)) / 2`` (clamped at 0). These are
    the shapes of ``transformers.get_scheduler`` (constant_with_warmup, linear, cosine), as a
    plain ``LambdaLR`` so a tabular run does not import transformers.
    """
    warmup, total, kind = cfg.schedule.warmup_steps, cfg.max_steps, cfg.schedule.kind

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``checkpoints/step_N.pt`` of a run folder, or None."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return max(found)[1] if found else None


class TrainingLoop:
    """Runs ``algorithm`` for ``cfg.max_steps`` optimizer steps, writing into ``run_dir``.

    Args:
        cfg: the validated run config (common part is all the loop reads).
        algorithm: the algorithm object (see :class:`Algorithm`).
        run_dir: folder for ``metrics.jsonl`` and ``checkpoints/``.
        progress: show a tqdm progress bar.
    """

    def __init__(self, cfg: RunConfig, algorithm: Algorithm, run_dir: str | Path,
                 progress: bool = False):
        self.cfg = cfg
        self.algorithm = algorithm
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.last_checkpoint: Path | None = None
        self.accelerator: Any = None  # set by run()

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Train; return the last metrics row merged with the last evaluation.

        Under DDP the other processes return ``{}`` for the evaluation part (only the main
        process evaluates).
        """
        cfg = self.cfg
        with isolated_rng(cfg.seed):
            accelerator = make_accelerator(cfg)
            self.accelerator = accelerator
            algo = self.algorithm
            algo.setup(accelerator)  # same global seed everywhere: identical references/teachers
            plain_model = algo.model
            model = accelerator.prepare_model(plain_model)
            rank, world = shard_of(accelerator)
            if world > 1:
                _seed_globals(cfg.seed + rank)  # dropout etc. differ across processes
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise SocratesError("the model has no trainable parameters")
            optimizer = torch.optim.AdamW(
                params,
                lr=cfg.optimizer.lr,
                betas=cfg.optimizer.betas,
                eps=cfg.optimizer.eps,
                weight_decay=cfg.optimizer.weight_decay,
            )
            optimizer = accelerator.prepare_optimizer(optimizer)
            scheduler = make_scheduler(cfg, optimizer)
            rng = np.random.default_rng(cfg.seed)

            start_step = 0
            ckpt = latest_checkpoint(self.run_dir) if cfg.resume else None
            if ckpt is not None:
                start_step = self._load(ckpt, accelerator, model, optimizer, scheduler, rng)
            elif self.metrics_path.exists() and accelerator.is_main_process:
                # a fresh run (or a resumed one killed before its first checkpoint) starts a
                # fresh file: rows from the earlier attempt would be written twice
                self.metrics_path.unlink()
            writer = _tensorboard_writer(self.run_dir) if accelerator.is_main_process else None

            last: dict[str, float] = {}
            last_eval: dict[str, float] = {}
            bar = _progress_bar(cfg.max_steps, start_step, self.progress)
            try:
                for step in range(start_step + 1, cfg.max_steps + 1):
                    row = self._train_step(step, accelerator, model, plain_model, params,
                                           optimizer, scheduler, rng)
                    evaluated = (cfg.eval_every and step % cfg.eval_every == 0) or (
                        step == cfg.max_steps
                    )
                    if evaluated and accelerator.is_main_process:
                        plain_model.eval()
                        with torch.no_grad():
                            last_eval = algo.evaluate()
                        row.update(last_eval)
                    if step % cfg.log_every == 0 or step == cfg.max_steps or evaluated:
                        self._write_row(row, accelerator, writer)
                    if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.max_steps:
                        self._save(step, accelerator, model, optimizer, scheduler, rng)
                    last = row
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{row['loss/total']:.4f}")
            finally:
                algo.model = plain_model  # callers get the plain module back
                if bar is not None:
                    bar.close()
                if writer is not None:
                    writer.close()
            accelerator.wait_for_everyone()
        return {**last, **last_eval}

    def _train_step(self, step, accelerator, model, plain_model, params, optimizer, scheduler,
                    rng):
        cfg, algo = self.cfg, self.algorithm
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        lr = scheduler.get_last_lr()[0]
        bad_loss = ""
        for micro in range(cfg.grad_accum):
            algo.model = plain_model  # sampling/rollouts never go through DDP's collectives
            batch = algo.next_batch(step, rng)
            algo.model = model
            last_micro = micro == cfg.grad_accum - 1
            sync = contextlib.nullcontext() if last_micro else accelerator.no_sync(model)
            with sync:
                loss, metrics = algo.compute_loss(batch)
                if not torch.isfinite(loss.detach()).all() and not bad_loss:
                    bad_loss = f"loss/total is {loss.item()} (micro-batch {micro + 1})"
                # backward even when non-finite: under DDP every process must join the
                # all-reduce; the run stops below, before the optimizer step
                accelerator.backward(loss / cfg.grad_accum)
            sums["loss/total"] = sums.get("loss/total", 0.0) + float(loss.detach())
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        algo.model = plain_model
        if accelerator.num_processes > 1:
            sums, bad_loss = _mean_over_processes(sums, bad_loss)
        if bad_loss:
            self._fail(step, bad_loss)
        if cfg.max_grad_norm is not None:
            grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        else:
            grads = [p.grad.detach().norm() for p in params if p.grad is not None]
            grad_norm = torch.stack(grads).norm() if grads else torch.zeros(())
        grad_norm = float(grad_norm)
        if not np.isfinite(grad_norm):
            self._fail(step, f"the gradient norm is {grad_norm}")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        elapsed = time.perf_counter() - t0
        row: dict[str, Any] = {"step": step}
        for k, v in sums.items():
            row[k] = v if k in SUMMED_METRICS else v / cfg.grad_accum
        row["optim/lr"] = lr
        row["optim/grad_norm"] = grad_norm
        row["perf/step_time_s"] = elapsed
        if "perf/tokens" in row:
            row["perf/tokens_per_s"] = row["perf/tokens"] / max(elapsed, 1e-9)
        return row

    def _fail(self, step: int, what: str) -> None:
        keep = self.last_checkpoint or latest_checkpoint(self.run_dir)
        kept = f"last good checkpoint kept: {keep}" if keep else "no checkpoint was saved yet"
        raise NonFiniteLossError(
            f"training diverged at step {step}: {what}; stopped. {kept}. Lower optimizer.lr, "
            "set max_grad_norm, or use precision: fp32"
        )

    # -- metrics --------------------------------------------------------------------------------

    def _write_row(self, row: dict[str, Any], accelerator: Any, writer: Any) -> None:
        if not accelerator.is_main_process:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # one write() of a whole line on an O_APPEND descriptor: a kill leaves either the full
        # row or (rarely, for huge rows) a torn last line that read_metrics skips
        data = (json.dumps(row) + "\n").encode()
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        if writer is not None:
            for k, v in row.items():
                if k != "step":
                    writer.add_scalar(k, v, row["step"])

    def _truncate_metrics(self, step: int) -> None:
        rows = [r for r in read_metrics(self.metrics_path) if r.get("step", 0) <= step]
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.metrics_path)

    # -- checkpoints ----------------------------------------------------------------------------

    def _save(self, step, accelerator, model, optimizer, scheduler, rng) -> None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return
        state = {
            "step": step,
            "model": accelerator.unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loop": rng.bit_generator.state,
            },
            "algorithm": self.algorithm.state_dict(),
            "config": self.cfg.model_dump(mode="json"),
        }
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / f"step_{step}.pt"
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint
        self.last_checkpoint = path
        found = sorted(
            (int(m.group(1)), p) for p in self.ckpt_dir.iterdir()
            if (m := CHECKPOINT_RE.match(p.name))
        )
        for _, old in found[: -self.cfg.keep_checkpoints]:
            old.unlink()

    def _load(self, path, accelerator, model, optimizer, scheduler, rng) -> int:
        state = torch.load(path, map_location="cpu", weights_only=False)
        _check_same_run(state["config"], self.cfg.model_dump(mode="json"), path)
        accelerator.unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        rng.bit_generator.state = state["rng"]["loop"]  # shared by every process
        rank, world = shard_of(accelerator)
        if world > 1:  # the checkpoint holds the main process's global RNGs; re-derive ours
            _seed_globals(self.cfg.seed + rank + world * int(state["step"]))
        self.algorithm.load_state_dict(state["algorithm"])
        self.last_checkpoint = Path(path)
        if accelerator.is_main_process:
            self._truncate_metrics(state["step"])
        return int(state["step"])


# Keys that may change between a run and its resumption (bookkeeping, not the math).
RESUMABLE_CHANGES = frozenset({"resume", "output_dir", "name", "max_steps", "log_every",
                               "eval_every", "save_every", "keep_checkpoints", "device"})


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint written under a different model/data/optimizer config."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(saved), flat(current)
    changed = sorted(k for k in a.keys() | b.keys()
                     if k.split(".")[0] not in RESUMABLE_CHANGES and a.get(k) != b.get(k))
    if changed:
        k = changed[0]
        raise InputError(
            f"cannot resume from {path}: config field {k!r} was {a.get(k)!r} when the checkpoint "
            f"was written and is {b.get(k)!r} now; restore it or start a new run "
            f"(resume: false or another output_dir)"
        )


def _seed_globals(seed: int) -> None:
    """Seed python/numpy/torch global RNGs (inside :func:`isolated_rng` only)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _mean_over_processes(sums: dict[str, float], bad_loss: str) -> tuple[dict[str, float], str]:
    """Average metric sums over DDP processes (``perf/tokens`` summed) and share a failure.

    Every process gets the same result, so a non-finite loss on any one process stops all of
    them at the same step instead of leaving the others waiting in the next all-reduce.
    """
    from accelerate.utils import gather_object

    gathered = gather_object([(sums, bad_loss)])
    out: dict[str, float] = {}
    for key in dict.fromkeys(k for s, _ in gathered for k in s):
        values = [s[key] for s, _ in gathered if key in s]
        out[key] = sum(values) if key in SUMMED_METRICS else sum(values) / len(values)
    failures = [f"process {r}: {b}" for r, (_, b) in enumerate(gathered) if b]
    return out, "; ".join(failures)


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _tensorboard_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
