"""Stop-gradient OPD vs OPD+: gradient bias measured directly, and a learning-rate sweep.

Part 1 (bias, about a minute): at the warm-started student of the study (the same teacher,
student and prompts as ``examples/opd_divergences.py``), a few thousand rollouts are sampled
once; for every divergence the trainer's own loss (``DistillAlgorithm.compute_loss``) gives the
Monte Carlo gradient of OPD+ and of stop-gradient OPD (gamma = 0), and the GKD loss on the same
rollouts gives the exact target, ``∇ Σ_t D_f(q ‖ π_θ)(c_t)`` over the full vocabulary (the
gradient both estimators are meant to follow). The estimators' conditional expectations given
the contexts are also computed exactly (full vocabulary: ``Σ_y π(y|c) A(u_y) ∇log π(y|c)``).
Reported: cosine similarity with the exact gradient and norm ratio, against the number of
rollouts, with and without the trainer's log-ratio clip.

Part 2 (sweep): for each (divergence, estimator), learning rates x 3 seeds of training; the
learning rate is picked on validation prompts (own per-token divergence at the last step,
mean over seeds) and reported on separate test prompts.

    nice -n 10 .venv/bin/python bench/opd_study.py                 # both parts
    nice -n 10 .venv/bin/python bench/opd_study.py --skip-sweep    # bias only, ~1-2 min

Writes ``bench/results/opd_study.md``, ``opd_study.json``, ``opd_study_bias.png`` and
``opd_study.png`` (sweep curves).

Why one file of this length: a bench is one script per claim (STYLE), read top to bottom with
the tables it writes.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import provenance  # noqa: E402
from examples.opd_divergences import STUDY_CONFIG  # noqa: E402

BIAS_DIVERGENCES = ["reverse_kl", "reverse_kl_k3", "forward_kl", "js", "hellinger", "tv",
                    "pearson", "neyman"]
SWEEP_DIVERGENCES = ["reverse_kl", "forward_kl", "js"]
EVAL_KEY = {"reverse_kl": "reverse_kl", "forward_kl": "forward_kl", "js": "js"}
LABEL = {"opd": "OPD (stop-gradient)", "opd+": "OPD+"}


def git_commit() -> str:
    """HEAD, flagged when a file this study depends on differs from it."""
    return provenance.commit(["training/losses/opd.py", "training/trainers/distill.py",
                              "training/teacher.py", "examples/opd_divergences.py",
                              "bench/opd_study.py"],
                             short=True, unknown="unknown",
                             note=" (with uncommitted changes to the study's files)")


# ---------------------------------------------------------------------------------------------
# Part 1: bias


def _config(algorithm: str, divergence: str, clip: float | None, **extra: Any):
    from training.config import parse_config

    cfg = copy.deepcopy(STUDY_CONFIG)
    cfg.update(extra)
    cfg["algorithm"] = algorithm
    cfg["distill"] = {**cfg["distill"], "divergence": divergence, "clip_log_ratio": clip}
    return parse_config(cfg)


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()]).double()


def _fresh(rollout):
    from training.trainers.distill import Rollout

    return Rollout.from_state({**rollout.to_state(), "old_logp": None, "teacher_logp": None,
                               "advantages": None})


def _expected_estimator_grad(algo, rollout, estimator: str) -> tuple[torch.Tensor, float]:
    """``-Σ_t Σ_y π(y|c_t) A(u_y) ∇log π(y|c_t)``: the estimator's expectation given contexts.

    Every vocabulary token's advantage comes from the library's ``opd_advantages`` (the
    trainer's function), applied to a (positions x vocabulary) layout.
    """
    from training.losses.opd import opd_advantages
    from training.trainers.distill import completion_logits

    dev = algo.device
    ids, pmask = rollout.prompt_ids.to(dev), rollout.prompt_mask.to(dev)
    comp, cmask = rollout.completion.to(dev), rollout.completion_mask.to(dev)
    logits = completion_logits(algo.model, ids, pmask, comp, cmask)  # (N, L, V)
    with torch.no_grad():
        t_logits = completion_logits(algo.teacher, ids, pmask, comp, cmask)
    logp = torch.log_softmax(logits.float(), -1)
    logq = torch.log_softmax(t_logits.float(), -1)
    N, L, V = logp.shape
    valid = cmask.bool()
    lp, lq = logp[valid], logq[valid]  # (M, V)
    adv = opd_advantages(lp.detach(), lq, torch.ones_like(lp), algo.dist.divergence,
                         estimator=estimator, gamma=0.0,
                         clip_log_ratio=algo.dist.clip_log_ratio, **algo.div_params)
    weight = (lp.detach().exp() * adv).detach()
    loss = -(weight * lp).sum()
    algo.model.zero_grad()
    loss.backward()
    return _flat_grad(algo.model), float(valid.sum())


def _trainer_grad(algo, rollout) -> tuple[torch.Tensor, float]:
    """The trainer's loss gradient times the rollout's token count (a sum over tokens)."""
    batch = _fresh(rollout)
    loss, _ = algo.compute_loss(batch)
    algo.model.zero_grad()
    loss.backward()
    n = float(batch.completion_mask.sum())
    return _flat_grad(algo.model) * n, n


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def bias_study(divergences, n_chunks, rollouts_per_prompt, log=print) -> dict[str, Any]:
    from training.trainers.distill import DistillAlgorithm

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = DistillAlgorithm(_config("gkd", "forward_kl", None, batch_size=48,
                                        seed=0), Path(tmp))
        base.accelerator = None
        base.dist = base.cfg.distill.model_copy(update={"rollouts_per_prompt":
                                                        rollouts_per_prompt})
        rng = np.random.default_rng(12345)
        rollouts = [base._sample(rng) for _ in range(n_chunks)]
        state = copy.deepcopy(base.model.state_dict())
        n_rollouts = sum(r.completion.shape[0] for r in rollouts)
        n_tokens = sum(float(r.completion_mask.sum()) for r in rollouts)
        log(f"bias: {n_rollouts} rollouts, {n_tokens:.0f} tokens")
        results: dict[str, Any] = {"n_rollouts": n_rollouts, "chunks": n_chunks,
                                   "rollouts_per_chunk": rollouts[0].completion.shape[0],
                                   "divergences": {}}
        for div in divergences:
            for clip in (None, 6.0):
                grads: dict[str, list[torch.Tensor]] = {}
                tokens = []
                for algorithm in ("gkd", "opd+", "opd"):
                    algo = DistillAlgorithm.__new__(DistillAlgorithm)
                    algo.__dict__.update(base.__dict__)
                    algo.cfg = _config(algorithm, div, clip, batch_size=48, seed=0)
                    algo.dist = algo.cfg.distill
                    algo.estimator = algo.cfg.estimator()
                    algo.div_params = algo.dist.divergence_params()
                    algo.model.load_state_dict(state)
                    algo.model.eval()  # no dropout: the sampling policy (tiny-llama has none)
                    grads[algorithm] = []
                    for r in rollouts:
                        g, n = _trainer_grad(algo, r)
                        grads[algorithm].append(g)
                        if algorithm == "gkd":
                            tokens.append(n)
                    if algorithm != "gkd":
                        key = f"{algorithm}_expected"
                        grads[key] = [_expected_estimator_grad(algo, r, algo.estimator)[0]
                                      for r in rollouts]
                exact = torch.stack(grads["gkd"]).sum(0)
                half = n_chunks // 2
                exact_a = torch.stack(grads["gkd"][:half]).sum(0)
                exact_b = torch.stack(grads["gkd"][half:]).sum(0)
                row: dict[str, Any] = {
                    "exact_norm_per_token": float(exact.norm() / sum(tokens)),
                    "exact_half_split_cos": _cos(exact_a, exact_b),
                }
                for algorithm in ("opd+", "opd"):
                    mc = torch.stack(grads[algorithm])
                    expected = torch.stack(grads[f"{algorithm}_expected"]).sum(0)
                    curve = []
                    k = 1
                    while k <= n_chunks:
                        curve.append({
                            "rollouts": k * results["rollouts_per_chunk"],
                            "cos": _cos(mc[:k].sum(0), torch.stack(grads["gkd"][:k]).sum(0)),
                        })
                        k *= 2
                    row[algorithm] = {
                        "mc_cos": _cos(mc.sum(0), exact),
                        "mc_norm_ratio": float(mc.sum(0).norm() / exact.norm()),
                        "expected_cos": _cos(expected, exact),
                        "expected_norm_ratio": float(expected.norm() / exact.norm()),
                        "mc_half_split_cos": _cos(mc[:half].sum(0), mc[half:].sum(0)),
                        "curve": curve,
                    }
                results["divergences"][f"{div}|clip={clip}"] = row
                log(f"  {div:14s} clip {clip}: OPD+ cos {row['opd+']['mc_cos']:.3f} "
                    f"(expected {row['opd+']['expected_cos']:.4f}), stop-grad cos "
                    f"{row['opd']['mc_cos']:.3f} (expected {row['opd']['expected_cos']:.4f}, "
                    f"norm x{row['opd']['expected_norm_ratio']:.2f})")
        return results


# ---------------------------------------------------------------------------------------------
# Part 2: learning-rate sweep with validation / test prompts


def _sweep_task(task: tuple) -> dict[str, Any]:
    algorithm, divergence, lr, seed, steps, eval_every, workdir = task
    torch.set_num_threads(1)
    from training.loop import TrainingLoop, read_metrics
    from training.trainers.distill import DistillAlgorithm

    class SplitEval(DistillAlgorithm):
        """Held-out prompts split in two: validation (first half) and test (second half)."""

        def __init__(self, cfg, run_dir):
            super().__init__(cfg, run_dir)
            held = self.eval_prompts
            self.split = {"val": held[: len(held) // 2], "test": held[len(held) // 2:]}

        def evaluate(self) -> dict[str, float]:
            out: dict[str, float] = {}
            for name, prompts in self.split.items():
                self.eval_prompts = prompts
                acc, length = self._accuracy(self.model, prompts)
                out[f"{name}/accuracy"], out[f"{name}/length"] = acc, length
                for k, v in self._eval_divergences().items():
                    out[k.replace("eval/", f"{name}/")] = v
            out["train/accuracy"] = self._accuracy(self.model, self._train_sample())[0]
            return out

    out = Path(workdir) / f"{algorithm.replace('+', 'plus')}-{divergence}-lr{lr:g}-s{seed}"
    cfg = _config(algorithm, divergence, 6.0, seed=seed, max_steps=steps,
                  eval_every=eval_every, output_dir=str(out), optimizer={"lr": lr},
                  data={**STUDY_CONFIG["data"], "n_eval": 64})
    algo = SplitEval(cfg, out)
    algo.accelerator = None
    start = {"step": 0, **algo.evaluate()}
    TrainingLoop(cfg, algo, out).run()
    rows = [start, *[r for r in read_metrics(out / "metrics.jsonl") if "val/accuracy" in r]]
    return {"algorithm": algorithm, "divergence": divergence, "lr": lr, "seed": seed,
            "rows": rows}


def run_sweep(divergences, lrs, seeds, steps, eval_every, jobs, log=print):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with tempfile.TemporaryDirectory() as tmp:
        tasks = [(a, d, lr, s, steps, eval_every, tmp) for d in divergences
                 for a in ("opd", "opd+") for lr in lrs for s in seeds]
        results = [_sweep_task(tasks[0])]  # trains and caches the teacher first
        log(_describe(results[0]))
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            for res in ex.map(_sweep_task, tasks[1:]):
                results.append(res)
                log(_describe(res))
    return results


def _describe(res) -> str:
    last = res["rows"][-1]
    key = EVAL_KEY[res["divergence"]]
    return (f"{res['algorithm']:4s} {res['divergence']:10s} lr {res['lr']:g} seed {res['seed']}:"
            f" val {key} {res['rows'][0]['val/' + key]:.3f} -> {last['val/' + key]:.3f}")


def select(results, divergences, lrs):
    """Per (divergence, estimator): lr with the lowest mean validation D_f at the last step."""
    table = []
    for div in divergences:
        key = EVAL_KEY[div]
        for algorithm in ("opd", "opd+"):
            per_lr = {}
            for lr in lrs:
                runs = [r for r in results if r["divergence"] == div
                        and r["algorithm"] == algorithm and r["lr"] == lr]
                per_lr[lr] = {
                    "val": [r["rows"][-1][f"val/{key}"] for r in runs],
                    "test": [r["rows"][-1][f"test/{key}"] for r in runs],
                    "test_start": [r["rows"][0][f"test/{key}"] for r in runs],
                    "test_rkl": [r["rows"][-1]["test/reverse_kl"] for r in runs],
                    "test_fkl": [r["rows"][-1]["test/forward_kl"] for r in runs],
                    "test_acc": [r["rows"][-1]["test/accuracy"] for r in runs],
                    "train_acc": [r["rows"][-1]["train/accuracy"] for r in runs],
                    "test_len": [r["rows"][-1]["test/length"] for r in runs],
                    "finite": all(math.isfinite(v) for r in runs for k, v in r["rows"][-1].items()
                                  if isinstance(v, float)),
                }
            best = min(lrs, key=lambda lr: statistics.fmean(per_lr[lr]["val"]))
            table.append({"divergence": div, "algorithm": algorithm, "best_lr": best,
                          "per_lr": per_lr})
    return table


def ci(values) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    from scipy import stats

    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():.3f} ± {half:.3f}"


# ---------------------------------------------------------------------------------------------
# Plots and report


def plot_bias(bias, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    divs = [k for k in bias["divergences"] if k.endswith("clip=None")]
    names = [k.split("|")[0] for k in divs]
    x = np.arange(len(divs))
    for j, (alg, color) in enumerate((("opd+", "tab:blue"), ("opd", "tab:red"))):
        axes[0].bar(x + (j - 0.5) * 0.38, [bias["divergences"][k][alg]["expected_cos"]
                                           for k in divs], 0.38, color=color, label=LABEL[alg])
    axes[0].set_xticks(x, names, rotation=30, ha="right")
    axes[0].set_ylim(min(-0.1, min(bias["divergences"][k]["opd"]["expected_cos"]
                                   for k in divs) - 0.05), 1.05)
    axes[0].axhline(1.0, color="k", lw=0.6)
    axes[0].set_ylabel("cosine with the exact gradient")
    axes[0].set_title("expected gradient (full-vocabulary, given the sampled contexts)",
                      fontsize=9)
    axes[0].legend(fontsize=8)
    for k, name in zip(divs, names, strict=True):
        if name not in ("reverse_kl", "forward_kl", "js", "reverse_kl_k3"):
            continue
        for alg, style in (("opd+", "-"), ("opd", "--")):
            curve = bias["divergences"][k][alg]["curve"]
            axes[1].plot([c["rollouts"] for c in curve], [c["cos"] for c in curve], style,
                         marker="o", ms=3, label=f"{name} {LABEL[alg]}")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("rollouts averaged (Monte Carlo, the trainer's loss)")
    axes[1].set_ylabel("cosine with the exact gradient")
    axes[1].set_title("Monte Carlo gradient vs rollouts (no log-ratio clip)", fontsize=9)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_sweep(results, table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    divs = list(dict.fromkeys(t["divergence"] for t in table))
    fig, axes = plt.subplots(1, len(divs), figsize=(4.5 * len(divs), 4), squeeze=False)
    colors = {"opd": "tab:red", "opd+": "tab:blue"}
    for j, div in enumerate(divs):
        ax = axes[0, j]
        for t in table:
            if t["divergence"] != div:
                continue
            runs = [r for r in results if r["divergence"] == div
                    and r["algorithm"] == t["algorithm"] and r["lr"] == t["best_lr"]]
            for i, r in enumerate(runs):
                ax.plot([row["step"] for row in r["rows"]],
                        [row[f"test/{EVAL_KEY[div]}"] for row in r["rows"]],
                        color=colors[t["algorithm"]], alpha=0.8, marker="o", ms=3,
                        label=f"{LABEL[t['algorithm']]} lr {t['best_lr']:g}" if i == 0 else None)
        ax.set_title(f"f = {div} (lr picked on validation)", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"test per-token {div} (student samples)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_markdown(args, bias, sweep_table, seconds, path):
    cmd = "nice -n 10 .venv/bin/python bench/opd_study.py " + " ".join(sys.argv[1:])
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    L = ["# Stop-gradient OPD vs OPD+: gradient bias and a learning-rate sweep", "",
         f"Generated by `{cmd.strip()}` on {datetime.date.today().isoformat()}, commit "
         f"{git_commit()}; {seconds / 60:.1f} minutes on this machine's 2 CPU cores (load "
         f"average {load} when written: shared with other jobs), python "
         f"{platform.python_version()}, torch {torch.__version__}. Every number: "
         "`opd_study.json`.", "",
         "Setup (`examples/opd_divergences.py` STUDY_CONFIG): teacher tiny-llama 64x2 trained by "
         "SFT (800 steps, cached) on single-digit addition; student tiny-llama 32x2 with a "
         f"{STUDY_CONFIG['distill']['student_sft_steps']}-step supervised warm start; "
         f"completions of at most {STUDY_CONFIG['distill']['max_new_tokens']} tokens sampled "
         "at temperature 1; vocabulary 100; gamma = 0.", "",
         "## 1. Gradient bias at the warm start", "",
         f"{bias['n_rollouts']} rollouts of the warm-started student ({bias['chunks']} batches "
         f"of {bias['rollouts_per_chunk']}: every training prompt "
         f"{bias['rollouts_per_chunk'] // 48} times per batch), sampled once and shared by "
         "every row. Exact gradient = the GKD loss's gradient on the same rollouts, "
         "∇ Σ_t D_f(q ‖ π_θ)(c_t) with the full vocabulary (what OPD+ with γ = 0 estimates; "
         "tested equal to it by enumeration in tests/training/losses/test_opd.py). MC = the "
         "trainer's `compute_loss` gradient (opd+ or opd), summed over all rollouts. Expected = "
         "the estimator's conditional expectation given the contexts, Σ_y π(y|c) A(u_y) "
         "∇log π(y|c) over the whole vocabulary with the library's advantages (no sampling "
         "noise in the token). Half-split = cosine between the two halves' sums (the noise "
         "level at half the rollouts).", "",
         "| f | log-ratio clip | exact: half-split cos | OPD+ expected cos | OPD+ MC cos "
         "(half-split) | stop-grad expected cos | stop-grad expected norm / exact | "
         "stop-grad MC cos (half-split) |", "|---|---|---|---|---|---|---|---|"]
    for key, row in bias["divergences"].items():
        div, clip = key.split("|")
        L.append(f"| {div} | {clip.split('=')[1]} | {row['exact_half_split_cos']:.3f} | "
                 f"{row['opd+']['expected_cos']:.4f} | {row['opd+']['mc_cos']:.3f} "
                 f"({row['opd+']['mc_half_split_cos']:.3f}) | {row['opd']['expected_cos']:.4f} | "
                 f"{row['opd']['expected_norm_ratio']:.2f} | {row['opd']['mc_cos']:.3f} "
                 f"({row['opd']['mc_half_split_cos']:.3f}) |")
    L += ["", "Monte Carlo cosine with the exact gradient against the number of rollouts "
              "(no clip):", "",
          "| f | estimator | " + " | ".join(
              str(c["rollouts"]) for c in next(iter(bias["divergences"].values()))["opd+"]["curve"])
          + " |", "|---|---|" + "---|" * len(next(iter(bias["divergences"].values()))
                                            ["opd+"]["curve"])]
    for key, row in bias["divergences"].items():
        if not key.endswith("None"):
            continue
        for alg in ("opd+", "opd"):
            L.append(f"| {key.split('|')[0]} | {LABEL[alg]} | "
                     + " | ".join(f"{c['cos']:.3f}" for c in row[alg]["curve"]) + " |")
    L += ["", "![bias](opd_study_bias.png)", ""]
    if sweep_table:
        a = args
        L += ["## 2. Learning-rate sweep, picked on validation", "",
              f"Per (divergence, estimator): lr in {a.lrs}, seeds {a.seeds}, {a.steps} steps "
              f"(eval every {a.eval_every}); 48 training prompts, 16 per step x "
              f"{STUDY_CONFIG['distill']['rollouts_per_prompt']} completions, AdamW, grad clip "
              "1, log-ratio clip 6, one update per rollout. Held-out prompts (about 60, none "
              "among the training prompts) split in halves: validation picks the lr (lowest "
              "mean per-token D_f of the run's own f on the student's samples at the last "
              "step), test reports it. Values: mean ± 95% t-interval over the "
              f"{len(a.seeds)} seeds.",
              "",
              "| f | estimator | lr picked | validation D_f per lr | test D_f start -> end "
              "| test reverse KL | test forward KL | test accuracy | train-prompt accuracy | "
              "test length | finite |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in sweep_table:
            b = t["per_lr"][t["best_lr"]]
            per_lr = ", ".join(f"{lr:g}: {statistics.fmean(v['val']):.3f}"
                               for lr, v in t["per_lr"].items())
            L.append(f"| {t['divergence']} | {LABEL[t['algorithm']]} | {t['best_lr']:g} | "
                     f"{per_lr} | {statistics.fmean(b['test_start']):.3f} -> {ci(b['test'])} | "
                     f"{ci(b['test_rkl'])} | {ci(b['test_fkl'])} | {ci(b['test_acc'])} | "
                     f"{ci(b['train_acc'])} | {statistics.fmean(b['test_len']):.2f} | "
                     f"{'yes' if b['finite'] else 'no'} |")
        L += ["", "![sweep](opd_study.png)", ""]
    path.write_text("\n".join(L))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bias-chunks", type=int, default=16, help=">= 2")
    parser.add_argument("--bias-rollouts-per-prompt", type=int, default=5)
    parser.add_argument("--bias-divergences", nargs="+", default=BIAS_DIVERGENCES)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--divergences", nargs="+", default=SWEEP_DIVERGENCES)
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bias = bias_study(args.bias_divergences, args.bias_chunks, args.bias_rollouts_per_prompt)
    plot_bias(bias, out / "opd_study_bias.png")
    results, table = [], []
    if not args.skip_sweep:
        results = run_sweep(args.divergences, args.lrs, args.seeds, args.steps,
                            args.eval_every, args.jobs)
        table = select(results, args.divergences, args.lrs)
        plot_sweep(results, table, out / "opd_study.png")
    seconds = time.perf_counter() - t0
    payload = {"args": vars(args), "seconds": seconds, "bias": bias, "sweep_table": table,
               "sweep_runs": results}
    (out / "opd_study.json").write_text(json.dumps(payload, indent=1, default=float))
    write_markdown(args, bias, table, seconds, out / "opd_study.md")
    print((out / "opd_study.md").read_text())


if __name__ == "__main__":
    main()
