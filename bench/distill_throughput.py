"""Tokens per second of our on-policy distillation step against TRL's, measured in one run.

Same student and teacher (tiny-llama presets built from the same seeds, the character
tokenizer), the same arithmetic prompts, the same number of completions per step and the same
completion length, sampling at temperature 1 with no top-k/top-p, fp32, on the same CPU
threads, one process. A step = sample completions with the student + score them under student
and teacher + backward + AdamW. Throughput = completion tokens (EOS included) per second of
step wall time, after ``--warmup`` steps; the median over steps is reported too.

Ours: ``training.loop.TrainingLoop`` with the ``opd+`` trainer (sampled-token advantages) and
the ``gkd`` trainer (full-vocabulary divergence, the same loss family as TRL's). TRL: the
on-policy ``trl.DistillationTrainer`` of TRL 1.x (student-generated completions, generalized JSD
over the full vocabulary; ``beta=1`` is reverse KL). TRL is *not* a dependency of the project:
install it into the virtualenv for this benchmark only (``.venv/bin/pip install trl``).

    .venv/bin/python bench/distill_throughput.py --steps 12 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import provenance  # noqa: E402

#: the code this bench measures (uncommitted edits there mark the results' commit)
CODE_PATHS = ["training", "core", "bench/distill_throughput.py"]
STUDENT = {"name": "tiny-llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2}
TEACHER = {"name": "tiny-llama", "hidden_size": 64, "num_layers": 2, "num_heads": 4}


def our_run(algorithm: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Throughput of our loop for ``algorithm`` (opd+ or gkd)."""
    from training.config import parse_config
    from training.loop import TrainingLoop, read_metrics
    from training.trainers.distill import DistillAlgorithm

    out = workdir / algorithm.replace("+", "plus")
    cfg = parse_config({
        "algorithm": algorithm,
        "model": STUDENT,
        "data": {"task": "arithmetic", "n_train": 512, "n_eval": 0,
                 "arithmetic": {"max_operand": 20, "operations": "+"}},
        "batch_size": args.prompts,
        "max_steps": args.steps + args.warmup,
        "optimizer": {"lr": 1e-3},
        "device": "cpu",
        "output_dir": str(out),
        "distill": {"divergence": "reverse_kl", "max_new_tokens": args.max_new_tokens,
                    "rollouts_per_prompt": args.rollouts, "eval_samples": 0,
                    "teacher": {**TEACHER, "sft_steps": 0, "cache_dir": str(workdir / "t")}},
    })
    algo = DistillAlgorithm(cfg, out)
    TrainingLoop(cfg, algo, out).run()
    rows = read_metrics(out / "metrics.jsonl")[args.warmup:]
    times = [r["perf/step_time_s"] for r in rows]
    tokens = [r["perf/tokens"] for r in rows]
    return {"steps": len(rows), "tokens": sum(tokens), "seconds": sum(times),
            "tokens_per_s": sum(tokens) / sum(times),
            "median_tokens_per_s": statistics.median(t / s for t, s in zip(tokens, times,
                                                                            strict=True)),
            "mean_length": sum(r["gen/length"] for r in rows) / len(rows)}


def trl_run(args: argparse.Namespace, workdir: Path) -> dict:
    """Throughput of ``trl.DistillationTrainer`` on the same models and prompts."""
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback

    from training.config import ModelSection
    from training.models import build_model, load_tokenizer
    from training.tasks.arithmetic import generate

    tok = load_tokenizer(ModelSection(**STUDENT))
    student = build_model(ModelSection(**STUDENT), tok, seed=0)
    teacher = build_model(ModelSection(**TEACHER), tok, seed=1234)
    student.config.use_cache = True
    prompts = [p.prompt for p in generate(512, 0, 20, "+")]
    dataset = Dataset.from_dict({"prompt": prompts})

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0, self.times, self.lengths = 0.0, [], []

        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(logs["completions/mean_length"])

    rows = args.prompts * args.rollouts
    config = trl.DistillationConfig(
        output_dir=str(workdir / "trl"),
        per_device_train_batch_size=rows,
        gradient_accumulation_steps=1,
        max_steps=args.steps + args.warmup,
        learning_rate=1e-3,
        max_completion_length=args.max_new_tokens,
        temperature=1.0, top_k=0, top_p=1.0,
        beta=1.0,  # reverse KL over the full vocabulary
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, seed=0,
    )
    timer = Timer()
    trainer = trl.DistillationTrainer(model=student, teacher_model=teacher, args=config,
                                      train_dataset=dataset, processing_class=tok,
                                      callbacks=[timer])
    trainer.train()
    times = timer.times[args.warmup:]
    lengths = timer.lengths[args.warmup:] or timer.lengths
    if len(lengths) != len(times):  # logs every step; fall back to the mean length
        lengths = [sum(lengths) / len(lengths)] * len(times)
    tokens = [L * rows for L in lengths]
    return {"steps": len(times), "tokens": sum(tokens), "seconds": sum(times),
            "tokens_per_s": sum(tokens) / sum(times),
            "median_tokens_per_s": statistics.median(t / s for t, s in zip(tokens, times,
                                                                            strict=True)),
            "mean_length": sum(lengths) / len(lengths), "trl_version": trl.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step")
    parser.add_argument("--rollouts", type=int, default=2, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    args.record = provenance.run_record("bench/distill_throughput.py", sys.argv[1:], CODE_PATHS)
    torch.set_num_threads(args.threads)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["SOCRATES_RUNS_DIR"] = str(workdir / "runs")
        results["ours opd+ (sampled-token OPD+ step)"] = our_run("opd+", args, workdir)
        results["ours gkd (full-vocabulary step)"] = our_run("gkd", args, workdir)
        try:
            results["TRL DistillationTrainer (beta=1)"] = trl_run(args, workdir)
        except Exception as exc:  # record exactly why TRL could not run here
            results["TRL DistillationTrainer (beta=1)"] = {"error": f"{type(exc).__name__}: "
                                                                    f"{exc}"}
    write_report(results, args)


def write_report(results: dict[str, dict], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "threads": args.threads, "cpu_count": os.cpu_count(),
            "rows_per_step": args.prompts * args.rollouts,
            "max_new_tokens": args.max_new_tokens, "timed_steps": args.steps,
            "warmup_steps": args.warmup, **args.record}
    (out / "distill_throughput.json").write_text(json.dumps({"meta": meta, "results": results},
                                                            indent=2))
    trl_res = results.get("TRL DistillationTrainer (beta=1)", {})
    lines = [
        "# On-policy distillation throughput: ours vs TRL",
        "",
        provenance.describe(args.record),
        "",
        f"Generated by `bench/distill_throughput.py` (one process, CPU, {args.threads} torch "
        f"threads, fp32). Student tiny-llama {STUDENT['hidden_size']}x{STUDENT['num_layers']}, "
        f"teacher tiny-llama {TEACHER['hidden_size']}x{TEACHER['num_layers']}, char tokenizer "
        f"(100 tokens), {args.prompts * args.rollouts} completions per step of at most "
        f"{args.max_new_tokens} tokens, temperature 1, no top-k/top-p; {args.steps} timed "
        f"steps after {args.warmup} warm-up steps. A step = sample + score (student and "
        "teacher) + backward + AdamW. Tokens = completion tokens incl. EOS.",
        "",
        "TRL was installed into the virtualenv for this benchmark only "
        f"(`.venv/bin/pip install trl`, version {trl_res.get('trl_version', 'n/a')}); it is not "
        "a project dependency. TRL 1.x's on-policy distillation trainer is "
        "`trl.DistillationTrainer` (the older `GKDTrainer` lives in `trl.experimental.gkd`).",
        "",
        "| trainer | tokens/s (total) | tokens/s (median step) | mean completion length | "
        "timed steps |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:300]} | | | |")
        else:
            lines.append(f"| {name} | {r['tokens_per_s']:.0f} | {r['median_tokens_per_s']:.0f} "
                         f"| {r['mean_length']:.2f} | {r['steps']} |")
    if "error" not in trl_res:
        base = trl_res["tokens_per_s"]
        lines += ["", "Ratios (total tokens/s over TRL's):", ""]
        for name, r in results.items():
            if "error" not in r and not name.startswith("TRL"):
                lines.append(f"- {name}: {r['tokens_per_s'] / base:.2f}x")
    lines += ["", "Machine: " + json.dumps(meta), ""]
    (out / "distill_throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
