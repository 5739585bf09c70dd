"""Tokens/s and peak memory of our DPO and MallowsPO steps against TRL's ``DPOTrainer``.

Same tiny model (tiny-llama preset built from the same seed, the character tokenizer), the same
synthetic preference pairs with identical token ids (checked), the same batch size, sequence
lengths, optimizer (AdamW, constant lr, no weight decay, grad-norm clip 1.0), fp32, no gradient
checkpointing, no evaluation, the same torch threads. A step = forward of ``prompt + chosen`` and
``prompt + rejected`` through the policy and the frozen reference, DPO loss, backward, clip,
AdamW. Tokens = non-pad tokens of the chosen and rejected sequences of the step (prompts counted
in both), the same definition for every contestant.

Contestants:

- ``ours dpo`` / ``ours mallowspo-theta`` / ``ours mallowspo-phi``: ``training.loop.TrainingLoop``
  with :class:`training.trainers.preference.PreferenceAlgorithm` (MallowsPO also computes the
  reference's next-token entropies for ``c(x)`` / ``phi(x)``).
- ``TRL dpo``: ``trl.DPOTrainer`` (``loss_type="sigmoid"``, no label smoothing, summed
  completion log-probs: our DPO convention), the reference model passed explicitly.
- with ``--precomputed``: ours with ``preference.reference: precomputed`` and TRL with
  ``precompute_ref_log_probs=True`` (no reference forward during the step).

Timing (``--rounds`` subprocesses): every contestant trains in its own thread of one process and
they take optimizer steps strictly in turn (:class:`Turns`; one computes at a time, the order
rotates every round), so neighbouring steps of different contestants see the same outside load
on a shared machine. *Step time* runs from the start of the forward to the end of the optimizer
step (TRL: ``on_step_begin`` to ``on_step_end``; ours: the loop's ``perf/step_time_s`` minus the
time spent waiting for the turn and drawing/collating the batch, which TRL does before
``on_step_begin``). ``--warmup`` steps per contestant are not timed. Reported: the median over
all timed steps of all rounds, the interquartile range and the per-round medians.

Memory: each contestant once more alone in a fresh subprocess (so figures are comparable). The
kernel's RSS high-water mark is reset at the first timed step (``/proc/self/clear_refs``) and
``VmHWM`` read after the last, so the figure is the exact peak resident set over the timed
steps (whole process: Python, libraries, weights, optimizer state, activations, allocator
caches); the increase over the resident set at the first timed step is reported too. These
runs also give each contestant's tokens/s alone and its *cycle* tokens/s (one step's start to
the next's: everything the trainer does per step, batch and logging included).

Loss parity: a policy perturbed away from the reference (same seeded noise in both), one batch;
TRL's ``compute_loss`` (its own tokenization, collator, fused log-prob head and reference
forward) against our trainer's ``compute_loss``; the per-sequence policy and reference log-probs
are compared as well.

TRL is *not* a project dependency: install it into the virtualenv for this benchmark only
(``.venv/bin/pip install trl``).

    .venv/bin/python bench/preference_throughput.py --rounds 3 --steps 20 --precomputed

Why one file of this length: a bench is one script per claim (STYLE): ours and the peer in
the same run, with the parity checks that make the ratio meaningful.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import provenance  # noqa: E402

#: the code this bench measures (uncommitted edits there mark the results' commit)
CODE_PATHS = ["training", "core", "bench/preference_throughput.py"]
BETA = 0.1
LR = 1e-4
MAX_GRAD_NORM = 1.0
SEED = 0
ALPHABET = "abcdefghijklmnopqrstuvwxyz      .,"

CONTESTANTS = ("ours:dpo", "ours:mallowspo-theta", "ours:mallowspo-phi", "trl:dpo")
PRECOMPUTED = ("ours:dpo-precomputed", "trl:dpo-precomputed")
LABELS = {
    "ours:dpo": "ours dpo",
    "ours:mallowspo-theta": "ours mallowspo-theta",
    "ours:mallowspo-phi": "ours mallowspo-phi",
    "trl:dpo": "TRL DPOTrainer (sigmoid)",
    "ours:dpo-precomputed": "ours dpo, precomputed reference",
    "trl:dpo-precomputed": "TRL DPOTrainer, precompute_ref_log_probs",
}


# --------------------------------------------------------------------------------------------
# Shared setup
# --------------------------------------------------------------------------------------------


def model_spec(args: argparse.Namespace) -> dict:
    return {"name": "tiny-llama", "hidden_size": args.hidden, "num_layers": args.layers,
            "num_heads": args.heads}


def write_pairs(path: Path, n: int, args: argparse.Namespace) -> None:
    """``n`` synthetic prompt/chosen/rejected rows of random lowercase text (seeded)."""
    rng = np.random.default_rng([SEED, 7])
    letters = np.array(list(ALPHABET))

    def text(lo: int, hi: int) -> str:
        return "".join(rng.choice(letters, size=int(rng.integers(lo, hi + 1)))).strip() or "a"

    with path.open("w") as fh:
        for _ in range(n):
            row = {"prompt": text(args.prompt_len // 2, args.prompt_len),
                   "chosen": text(args.response_len // 4, args.response_len),
                   "rejected": text(args.response_len // 4, args.response_len)}
            fh.write(json.dumps(row) + "\n")


def read_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def our_config(kind: str, args: argparse.Namespace, data: Path, out: Path,
               max_steps: int) -> dict:
    algorithm = kind.removesuffix("-precomputed")
    return {
        "algorithm": algorithm,
        "model": model_spec(args),
        "data": {"task": None, "path": str(data), "eval_fraction": 0.0,
                 # room for the longest prompt (+BOS) and response (+EOS): nothing is truncated
                 "max_prompt_length": args.prompt_len + 1,
                 "max_response_length": args.response_len + 1},
        "batch_size": args.batch,
        "max_steps": max_steps,
        "max_grad_norm": MAX_GRAD_NORM,
        "optimizer": {"lr": LR, "weight_decay": 0.0},
        "schedule": {"kind": "constant"},
        "device": "cpu",
        "seed": SEED,
        "output_dir": str(out),
        "preference": {"beta": BETA,
                       "reference": "precomputed" if kind.endswith("-precomputed") else "model"},
    }


def trl_dataset(rows: list[dict]):
    """TRL's input: BOS written into the prompt text so its ids equal our ``tokenize_pair``."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": ["[BOS]" + r["prompt"] for r in rows],
                              "chosen": [r["chosen"] for r in rows],
                              "rejected": [r["rejected"] for r in rows]})


def trl_config(args: argparse.Namespace, out: Path, max_steps: int, precompute: bool):
    import trl

    return trl.DPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        max_steps=max_steps,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=MAX_GRAD_NORM,
        beta=BETA,
        loss_type=["sigmoid"],
        label_smoothing=0.0,
        max_length=args.prompt_len + args.response_len + 2,  # never truncates
        precompute_ref_log_probs=precompute,
        precompute_ref_batch_size=args.batch,
        bf16=False, fp16=False, use_cpu=True,  # activation checkpointing is off by default
        logging_steps=1, report_to=[], save_strategy="no", eval_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, dataset_num_proc=None, seed=SEED,
    )


def check_same_tokens(trainer, rows: list[dict], tokenizer, args: argparse.Namespace) -> int:
    """Assert TRL's tokenized rows equal our ``tokenize_pair``; returns the rows checked."""
    from training.data import PreferenceExample, tokenize_pair

    ds = trainer.train_dataset
    for i, r in enumerate(rows):
        ours = tokenize_pair(PreferenceExample(r["prompt"], r["chosen"], r["rejected"]),
                             tokenizer, args.prompt_len + 1, args.response_len + 1)
        theirs = ds[i]
        if (theirs["prompt_ids"], theirs["chosen_ids"], theirs["rejected_ids"]) != (
                ours.prompt_ids, ours.chosen_ids, ours.rejected_ids):
            raise RuntimeError(f"row {i}: TRL and our tokenization differ; the comparison would "
                               "not be on the same tokens")
    return len(rows)


# --------------------------------------------------------------------------------------------
# Memory: the kernel's RSS high-water mark, reset right before training
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else -1


def reset_peak_rss() -> int:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); return the RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


class MemoryProbe:
    """Peak resident set over the timed steps: reset at the first timed step, read after the last.

    Warm-up steps are left out so that one-off costs (lazily loaded libraries and kernels,
    first-touch pages) do not count as step memory.
    """

    def __init__(self, warmup: int):
        self.warmup, self.calls = warmup, 0
        self.start_kib = self.peak_kib = -1

    def step_start(self) -> None:
        self.calls += 1
        if self.calls == self.warmup + 1:
            self.start_kib = reset_peak_rss()

    def after_last_step(self) -> None:
        if self.peak_kib < 0:
            self.peak_kib = _status_kib("VmHWM")

    def row(self) -> dict:
        return {"rss_at_timed_start_mib": self.start_kib / 1024,
                "peak_rss_mib": self.peak_kib / 1024,
                "peak_increase_mib": (self.peak_kib - self.start_kib) / 1024}


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


class Turns:
    """Round-robin steps among contestant threads of one process: one computes at a time.

    Contestant ``i`` holds the turn from the start of its step ``k`` until the start of its
    step ``k + 1`` (so its between-step work never overlaps another's timed step), then hands
    it to the next contestant still training. Everyone waits at a barrier until all have
    finished their setup. Adjacent steps of different contestants thus see the same outside
    load on a shared machine.
    """

    def __init__(self, n: int):
        self.n, self.turn, self.finished = n, 0, [False] * n
        self.cond = threading.Condition()
        self.ready = threading.Barrier(n)
        self.started = [False] * n

    def step_start(self, i: int) -> None:
        """Called by contestant ``i`` at the start of each of its steps (blocks until its turn)."""
        if not self.started[i]:
            self.started[i] = True
            self.ready.wait(timeout=1800)
        else:
            self._advance(i)
        with self.cond:
            self.cond.wait_for(lambda: self.turn == i)

    def finish(self, i: int) -> None:
        """Contestant ``i`` is done (or failed): skip it from now on."""
        with self.cond:
            self.finished[i] = True
        if not self.started[i]:
            self.ready.abort()  # it failed during setup: release the others with an error
        self._advance(i)

    def _advance(self, i: int) -> None:
        with self.cond:
            if self.turn == i:
                for k in range(1, self.n + 1):
                    if not self.finished[(i + k) % self.n]:
                        self.turn = (i + k) % self.n
                        break
            self.cond.notify_all()


def run_ours(kind: str, args: argparse.Namespace, data: Path, out: Path,
             step_start=None, after_last_step=None) -> dict:
    """Warm-up + timed steps of our loop; per-step times and tokens.

    ``step_start`` (optional) is called at the start of every step, before the batch is drawn;
    the time spent inside it and in drawing/collating the batch is excluded from step time.
    ``after_last_step`` (optional) is called once the last optimizer step is done.
    """
    from training.config import parse_config
    from training.loop import TrainingLoop, read_metrics
    from training.trainers.preference import PreferenceAlgorithm

    total = args.warmup + args.steps
    cfg = parse_config(our_config(kind, args, data, out, total))
    algo = PreferenceAlgorithm(cfg, out)
    starts: list[float] = []
    excluded: list[float] = []
    draw = algo.next_batch

    def timed_next_batch(step, rng):
        t0 = time.perf_counter()
        if step_start is not None:
            step_start()
        t1 = time.perf_counter()
        batch = draw(step, rng)
        starts.append(t1)
        excluded.append(time.perf_counter() - t0)
        return batch

    algo.next_batch = timed_next_batch  # type: ignore[method-assign]
    evaluate = algo.evaluate

    def evaluate_after_last_step():  # the loop evaluates once, right after the last step
        if after_last_step is not None:
            after_last_step()
        return evaluate()

    algo.evaluate = evaluate_after_last_step  # type: ignore[method-assign]
    TrainingLoop(cfg, algo, out).run()
    rows = read_metrics(out / "metrics.jsonl")
    assert len(rows) == total == len(starts)
    step_s = [r["perf/step_time_s"] - b for r, b in zip(rows, excluded, strict=True)]
    cycle_s = list(np.diff(starts))  # step i -> i + 1; the last step has no successor
    return {"tokens": [r["perf/tokens"] for r in rows], "step_s": step_s, "cycle_s": cycle_s,
            "torch_threads": torch.get_num_threads(),
            "loss_first": rows[0]["loss/total"], "loss_last": rows[-1]["loss/total"]}


def run_trl(kind: str, args: argparse.Namespace, data: Path, out: Path,
            step_start=None, after_last_step=None) -> dict:
    """Warm-up + timed steps of ``trl.DPOTrainer`` on the same model, data and batch."""
    import trl
    from transformers import TrainerCallback

    from training.config import ModelSection
    from training.models import build_model, load_tokenizer

    spec = ModelSection(**model_spec(args))
    tok = load_tokenizer(spec)
    model = build_model(spec, tok, seed=SEED)
    ref = copy.deepcopy(model)
    rows = read_pairs(data)
    total = args.warmup + args.steps

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin: list[float] = []
            self.end: list[float] = []

        def on_step_begin(self, a, state, control, **kw):
            if step_start is not None:
                step_start()
            self.begin.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            self.end.append(time.perf_counter())
            if len(self.end) == total and after_last_step is not None:
                after_last_step()

    class CountingDPOTrainer(trl.DPOTrainer):
        def training_step(self, model, inputs, *a, **kw):
            tokens.append(int(inputs["attention_mask"].sum()))
            return super().training_step(model, inputs, *a, **kw)

    tokens: list[int] = []
    timer = Timer()
    trainer = CountingDPOTrainer(
        model=model, ref_model=ref, args=trl_config(args, out, total, kind.endswith("precomputed")),
        train_dataset=trl_dataset(rows), processing_class=tok, callbacks=[timer])
    check_same_tokens(trainer, rows[: 4 * args.batch], tok, args)
    result = trainer.train()
    assert len(timer.end) == total == len(tokens)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens,
            "step_s": [e - b for b, e in zip(timer.begin, timer.end, strict=True)],
            "cycle_s": list(np.diff(timer.begin)), "torch_threads": torch.get_num_threads(),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else result.training_loss,
            "trl_version": trl.__version__}


def run_alternating(contestants: list[str], args: argparse.Namespace, data: Path,
                    out: Path) -> dict:
    """All contestants in threads of this process, one step each in turn (see :class:`Turns`)."""
    # transformers' lazy module loading is not thread-safe: import everything here first
    import datasets  # noqa: F401
    import trl  # noqa: F401
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback  # noqa: F401

    import training.loop  # noqa: F401
    import training.trainers.preference  # noqa: F401

    turns = Turns(len(contestants))
    results: dict[str, dict] = {}

    def body(i: int, role: str) -> None:
        side, kind = role.split(":")
        run = run_ours if side == "ours" else run_trl
        try:
            results[role] = run(kind, args, data, out / role.replace(":", "_"),
                                step_start=lambda: turns.step_start(i))
        except Exception as exc:  # recorded in the report; the others go on
            results[role] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            turns.finish(i)

    threads = [threading.Thread(target=body, args=(i, c)) for i, c in enumerate(contestants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_parity(args: argparse.Namespace, data: Path, out: Path) -> dict:
    """Our trainer's DPO loss and log-probs against TRL's on one batch, policy != reference."""
    import trl

    from training.config import ModelSection, parse_config
    from training.data import PreferenceExample, collate_pairs, tokenize_pair
    from training.loop import make_accelerator
    from training.models import build_model, load_tokenizer
    from training.trainers.preference import PreferenceAlgorithm, sequence_logps

    rows = read_pairs(data)[: args.batch]

    def perturb(model: torch.nn.Module) -> None:
        gen = torch.Generator().manual_seed(SEED + 99)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(args.perturb * torch.randn(p.shape, generator=gen))

    # ours: the trainer's own setup (reference = frozen copy of the seed-0 policy), then perturb
    cfg = parse_config(our_config("dpo", args, data, out / "ours", 1))
    algo = PreferenceAlgorithm(cfg, out / "ours")
    algo.setup(make_accelerator(cfg))
    perturb(algo.model)
    tok = load_tokenizer(cfg.model)
    pairs = [tokenize_pair(PreferenceExample(r["prompt"], r["chosen"], r["rejected"]), tok,
                           args.prompt_len + 1, args.response_len + 1) for r in rows]
    batch = collate_pairs(pairs, algo.pad_id)
    batch["split"] = "train"
    algo.model.eval()
    with torch.no_grad():
        our_loss, _ = algo.compute_loss(batch)
        ids, attn, resp = batch["input_ids"], batch["attention_mask"], batch["response_mask"]
        our_logps, _ = sequence_logps(algo.model(input_ids=ids, attention_mask=attn).logits, ids,
                                      resp)
        our_ref, _ = sequence_logps(algo.reference(input_ids=ids, attention_mask=attn).logits,
                                    ids, resp)

    # TRL: the same weights built independently, its own tokenization/collation/loss
    spec = ModelSection(**model_spec(args))
    policy = build_model(spec, tok, seed=SEED)
    ref = build_model(spec, tok, seed=SEED)
    perturb(policy)
    weight_diff = max(float((a - b).detach().abs().max()) for a, b in
                      zip(policy.parameters(), algo.model.parameters(), strict=True))
    trainer = trl.DPOTrainer(model=policy, ref_model=ref,
                             args=trl_config(args, out / "trl", 1, precompute=False),
                             train_dataset=trl_dataset(rows), processing_class=tok)
    check_same_tokens(trainer, rows, tok, args)
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, inputs)
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        trl_logps = trainer.model(input_ids=inputs["input_ids"],
                                  attention_mask=inputs["attention_mask"], labels=labels,
                                  use_cache=False, fused_lm_head=True).log_probs.sum(1)
        trl_ref = torch.cat(trainer.compute_ref_log_probs(trainer.ref_model, inputs))
    same_batch = bool(torch.equal(inputs["input_ids"], ids)
                      and torch.equal(inputs["completion_mask"], resp))
    return {"our_loss": float(our_loss), "trl_loss": float(trl_loss),
            "loss_abs_diff": abs(float(our_loss) - float(trl_loss)),
            "policy_logps_max_abs_diff": float((our_logps - trl_logps).abs().max()),
            "ref_logps_max_abs_diff": float((our_ref - trl_ref).abs().max()),
            "policy_minus_ref_mean": float((our_logps - our_ref).mean()),
            "weights_max_abs_diff": weight_diff, "identical_collated_batch": same_batch,
            "batch_pairs": len(rows), "trl_version": trl.__version__}


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    data, out = Path(args.data), Path(args.workdir)
    side, kind = args.role.split(":", 1)
    if side == "parity":
        res = run_parity(args, data, out)
    elif side == "alternate":
        res = run_alternating(kind.split(","), args, data, out)
    else:  # alone in this process: time it and take its memory
        probe = MemoryProbe(args.warmup)
        run = run_ours if side == "ours" else run_trl
        res = run(kind, args, data, out, step_start=probe.step_start,
                  after_last_step=probe.after_last_step)
        res.update(probe.row())
    Path(args.result).write_text(json.dumps(res))


# --------------------------------------------------------------------------------------------
# Driver: interleaved rounds of subprocesses, then the report
# --------------------------------------------------------------------------------------------


def spawn(role: str, args: argparse.Namespace, data: Path, workdir: Path) -> dict:
    name = role.split(",")[0].replace(":", "_")
    workdir.mkdir(parents=True, exist_ok=True)
    result = workdir / f"{name}.json"
    cmd = [sys.executable, __file__, "--role", role, "--data", str(data),
           "--workdir", str(workdir / name), "--result", str(result)]
    for flag in ("threads", "batch", "prompt_len", "response_len", "hidden", "layers", "heads",
                 "steps", "warmup", "perturb"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "SOCRATES_RUNS_DIR": str(workdir / "runs"), "HF_DATASETS_CACHE": str(workdir / "hf")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:400]}
    return json.loads(result.read_text())


def _tokens_per_s(run: dict, warmup: int, key: str = "step_s") -> list[float]:
    times = run[key][warmup:]  # cycle_s is one shorter: the last step has no successor
    return [t / s for t, s in zip(run["tokens"][warmup:], times, strict=False)]


def summarize(alternating: list[dict], isolated: dict | None, warmup: int) -> dict:
    """Pool the timed steps of all alternating rounds; memory from the isolated run."""
    step_tps = [v for r in alternating for v in _tokens_per_s(r, warmup)]
    q1, _, q3 = statistics.quantiles(step_tps, n=4)
    out = {
        "rounds": len(alternating), "timed_steps": len(step_tps),
        "tokens_per_step": statistics.mean(t for r in alternating for t in r["tokens"][warmup:]),
        "median_tokens_per_s": statistics.median(step_tps), "iqr_tokens_per_s": [q1, q3],
        "round_medians": [statistics.median(_tokens_per_s(r, warmup)) for r in alternating],
        "median_step_ms": 1e3 * statistics.median(
            s for r in alternating for s in r["step_s"][warmup:]),
        "torch_threads": alternating[0]["torch_threads"],
        "loss_first_last": [alternating[0]["loss_first"], alternating[0]["loss_last"]],
    }
    if isolated and "error" not in isolated:
        out["isolated"] = {
            "median_tokens_per_s": statistics.median(_tokens_per_s(isolated, warmup)),
            "median_cycle_tokens_per_s": statistics.median(
                _tokens_per_s(isolated, warmup, "cycle_s")),
            **{k: isolated[k] for k in ("peak_rss_mib", "peak_increase_mib",
                                        "rss_at_timed_start_mib")},
        }
    elif isolated:
        out["isolated"] = {"error": isolated["error"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds (one subprocess each, order rotated)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per contestant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--batch", type=int, default=16, help="preference pairs per step")
    parser.add_argument("--prompt-len", type=int, default=48, help="max prompt characters")
    parser.add_argument("--response-len", type=int, default=64,
                        help="max response characters")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--perturb", type=float, default=0.05,
                        help="std of the seeded weight noise separating policy from reference "
                             "in the loss parity check")
    parser.add_argument("--precomputed", action="store_true",
                        help="also time both trainers with precomputed reference log-probs")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        worker(args)
        return
    args.record = provenance.run_record("bench/preference_throughput.py", sys.argv[1:],
                                        CODE_PATHS)

    contestants = list(CONTESTANTS + (PRECOMPUTED if args.precomputed else ()))
    alternating: dict[str, list[dict]] = {c: [] for c in contestants}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = workdir / "pairs.jsonl"
        write_pairs(data, max(256, args.batch * (args.warmup + args.steps)), args)
        parity = spawn("parity:dpo", args, data, workdir)
        print("parity:", json.dumps(parity), flush=True)
        for k in range(args.rounds):
            order = contestants[k % len(contestants):] + contestants[: k % len(contestants)]
            res = spawn("alternate:" + ",".join(order), args, data, workdir / f"round{k}")
            for c in contestants:
                r = res.get(c, res)
                if "error" in r:
                    errors[c] = r["error"]
                    print(f"round {k} {c}: failed: {r['error']}", flush=True)
                else:
                    alternating[c].append(r)
                    print(f"round {k} {c}: "
                          f"{statistics.median(_tokens_per_s(r, args.warmup)):.0f} tokens/s "
                          "(median step)", flush=True)
        isolated = {}
        for c in contestants:  # memory: each alone in a fresh process
            isolated[c] = spawn(c, args, data, workdir / "isolated")
            scalars = {k: v for k, v in isolated[c].items() if not isinstance(v, list)}
            print(f"isolated {c}: {json.dumps(scalars)}", flush=True)
    results = {c: summarize(r, isolated.get(c), args.warmup) if r
               else {"error": errors.get(c, "no run")} for c, r in alternating.items()}
    for c in contestants:
        version = isolated.get(c, {}).get("trl_version")
        if version and "error" not in results[c]:
            results[c]["trl_version"] = version
    write_report(results, parity, args)


def write_report(results: dict[str, dict], parity: dict, args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "threads": args.threads, "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "batch_pairs": args.batch,
            "max_prompt_chars": args.prompt_len, "max_response_chars": args.response_len,
            "model": model_spec(args), "rounds": args.rounds, "timed_steps_per_round": args.steps,
            "warmup_steps": args.warmup, "beta": BETA, "lr": LR, **args.record}
    (out / "preference_throughput.json").write_text(json.dumps(
        {"meta": meta, "parity": parity, "results": results}, indent=2))
    trl_res = results.get("trl:dpo", {})
    version = trl_res.get("trl_version", parity.get("trl_version", "n/a"))
    spec = model_spec(args)
    lines = [
        "# Preference step throughput: ours vs TRL's DPOTrainer",
        "",
        provenance.describe(args.record),
        "",
        f"Generated by `bench/preference_throughput.py` (CPU, {args.threads} torch threads, "
        f"fp32). Policy and reference: tiny-llama {spec['hidden_size']}x{spec['num_layers']} "
        f"({spec['num_heads']} heads), char tokenizer (100 tokens), same seed. {args.batch} "
        f"pairs per step of synthetic text (prompts up to {args.prompt_len} characters, "
        f"responses up to {args.response_len}, plus BOS/EOS; identical token ids in both "
        f"trainers, checked); AdamW lr {LR}, constant, clip 1.0; beta {BETA}.",
        "",
        f"Timing: {args.rounds} rounds, each one subprocess in which every contestant trains in "
        "its own thread and they take optimizer steps strictly in turn (one computes at a time, "
        "round-robin; the order rotates every round), so neighbouring steps of different "
        "contestants see the same outside load on this shared machine; "
        f"{args.steps} timed steps per contestant and round after {args.warmup} warm-up steps. "
        "*Step* = forward (policy and reference) + loss + backward + clip + AdamW; drawing and "
        "collating the batch is excluded for both (TRL does it before `on_step_begin`). Tokens "
        "= non-pad tokens of the chosen and rejected sequences of a step (prompts counted in "
        "both).",
        "",
        "Memory: each contestant once more alone in a fresh subprocess; *peak RSS* is the "
        "kernel's resident-set high-water mark (`VmHWM`) over the timed steps (reset at the "
        "first timed step, read after the last), for the whole process: Python, libraries, "
        "weights, optimizer state, activations, allocator caches; *increase* = peak minus the "
        "resident set at the first timed step (what the steps themselves add). The same "
        "runs give the *alone* tokens/s (median step) and *cycle* tokens/s (one step's start to "
        "the next's, i.e. everything the trainer does per step including batch and logging).",
        "",
        f"TRL {version} was installed into the virtualenv for this benchmark only; it is not a "
        "project dependency. TRL runs `loss_type=['sigmoid']` (no label smoothing, summed "
        "completion log-probs), the same DPO convention as ours, with the reference model "
        "passed explicitly.",
        "",
        "| trainer | tokens/s (median step, in turn) | IQR | round medians | step ms | "
        "tokens/step | alone: tokens/s step / cycle | peak RSS MiB | increase MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        name = LABELS[key]
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:300]} | | | | | | | |")
            continue
        rounds = ", ".join(f"{v:.0f}" for v in r["round_medians"])
        iso = r.get("isolated", {"error": "not run"})
        alone = ("failed" if "error" in iso else
                 f"{iso['median_tokens_per_s']:.0f} / {iso['median_cycle_tokens_per_s']:.0f}")
        mem = ("| |" if "error" in iso else
               f"| {iso['peak_rss_mib']:.0f} | {iso['peak_increase_mib']:.1f} |")
        lines.append(
            f"| {name} | {r['median_tokens_per_s']:.0f} | {r['iqr_tokens_per_s'][0]:.0f}-"
            f"{r['iqr_tokens_per_s'][1]:.0f} | {rounds} | {r['median_step_ms']:.1f} | "
            f"{r['tokens_per_step']:.0f} | {alone} {mem}")
    pairs = [("ours:dpo", "trl:dpo"), ("ours:mallowspo-theta", "trl:dpo"),
             ("ours:mallowspo-phi", "trl:dpo"), ("ours:dpo-precomputed", "trl:dpo-precomputed")]
    ratio_lines = []
    for a, b in pairs:
        ra, rb = results.get(a, {}), results.get(b, {})
        if "median_tokens_per_s" in ra and "median_tokens_per_s" in rb:
            rounds = ", ".join(f"{x / y:.2f}" for x, y in zip(ra["round_medians"],
                                                               rb["round_medians"], strict=False))
            ratio_lines.append(
                f"- {LABELS[a]} / {LABELS[b]}: "
                f"{ra['median_tokens_per_s'] / rb['median_tokens_per_s']:.2f}x "
                f"(per round: {rounds})")
    if ratio_lines:
        lines += ["", "Ratios of median step tokens/s (in turn):", "", *ratio_lines]
    if "loss_abs_diff" in parity:
        ok = "passes" if parity["loss_abs_diff"] < 1e-5 else "FAILS"
        lines += [
            "",
            f"DPO loss parity ({ok} the 1e-5 target): one batch of {parity['batch_pairs']} pairs, "
            f"policy = reference + seeded N(0, {args.perturb}^2) weight noise (mean policy-minus-"
            f"reference log-ratio {parity['policy_minus_ref_mean']:.3f}); our trainer's loss "
            f"{parity['our_loss']:.8f}, TRL's {parity['trl_loss']:.8f}, |diff| = "
            f"{parity['loss_abs_diff']:.2e}. Per-sequence log-probs, max |diff|: policy "
            f"{parity['policy_logps_max_abs_diff']:.2e}, reference "
            f"{parity['ref_logps_max_abs_diff']:.2e}. Collated batches identical: "
            f"{parity['identical_collated_batch']}.",
        ]
    else:
        lines += ["", f"DPO loss parity: failed to run: {parity.get('error')}"]
    lines += ["", "Machine: " + json.dumps(meta), ""]
    (out / "preference_throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
