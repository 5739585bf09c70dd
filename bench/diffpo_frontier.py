"""DiFFPO's accuracy-NFE frontier on the letters task: d1 vs DiFFPO (λ = 0) vs the joint sampler.

Issue #19, item 2. The letters task (``training/tasks/letters.py``) mixes prompts whose right
number of function evaluations differs and is visible only in the prompt: ``sort`` and ``pick``
decode in one parallel step, ``perm`` needs about one step per letter (one parallel step from
the exact marginals succeeds with probability ``k!/k^k``). A fixed sampler setting pays the
``perm`` price on every prompt; DiFFPO's per-prompt controller need not.

1. Data (cached under ``--cache``, fixed seeds): generated training problems and held-out
   problems balanced over the kinds, none of whose (kind, letters) occurs in training.
2. SFT (``mdm-sft``, cached with its wall and CPU time) in chunks until greedy held-out accuracy
   at τ = 1 (one token per step) reaches ``--sft-target``. Its greedy accuracy-NFE sweep per
   kind, the sampled reward per controller setting (what a controller is trained on), and the
   likelihood surrogates' fidelity (d1's one-step and DiFFPO's two-stage log-probs against the
   sampler's own per-token log-probs) are measured on it.
3. RL from the SFT model, per seed, identical budgets: ``d1``; ``diffpo-fixed`` (two-stage
   likelihood and importance weights, fixed threshold sampler, NFE penalty 0: it differs from
   d1 in the likelihood and the weights only); ``diffpo-joint`` (the controller picks a
   confidence threshold per prompt; reward ``r - λ·NFE/k``); optionally ``diffpo-joint-eb``
   (the controller picks an entropy bound).
4. Greedy evaluation of every final model on the held-out problems at every threshold and
   entropy bound, and with the learned controller. The claim is tested at matched mean NFE
   against the best fixed threshold: the upper envelope of every fixed-threshold sweep of the
   same seed (d1, DiFFPO-fixed, the joint run's own model) and of the SFT start. 95% intervals
   are Student-t over seeds, paired by seed.

Writes ``bench/results/diffpo_frontier.md`` (tables, reading, provenance),
``diffpo_frontier.png`` (accuracy vs NFE per kind) and ``diffpo_frontier.json`` (every number).
Cached pieces are checked against the arguments that made them (a mismatch stops the run and
names the argument); results are always rendered whole from the runs of this argument set.

    nice -n 10 .venv/bin/python bench/diffpo_frontier.py              # the committed study
    nice -n 10 .venv/bin/python bench/diffpo_frontier.py --sft-only   # data, SFT, start analyses

Runs with one torch thread by default (``--threads``): this model is tiny, and on a shared
2-core machine more threads were slower. The earlier Sudoku bench is
``bench/diffpo_frontier_sudoku.py``.

Why one file of this length: a bench is one script per claim (STYLE), read top to bottom from
data to SFT to RL runs; its statistics and report live in ``diffpo_frontier_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench import provenance  # noqa: E402
from training import train  # noqa: E402
from training.loop import latest_checkpoint  # noqa: E402
from training.tasks import letters  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffpo_frontier_report import (  # noqa: E402
    ALL,
    _ci,
    claim_verdict,
    comparisons,
    matched_nfe,
    plot_letters,
    write_letters_markdown,
)


def _set(cfg: dict, key: str, value) -> None:
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


# Each method's overrides; "λ" marks where --nfe-penalty goes (d1 takes none, DiFFPO-fixed 0),
# "c" where --controller-lr-scale goes.
METHODS: dict[str, dict] = {
    "d1": {"algorithm": "d1"},
    "diffpo-fixed": {"algorithm": "diffpo", "diffusion.joint_sampler": False,
                     "diffusion.nfe_penalty": 0.0},
    "diffpo-joint": {"algorithm": "diffpo", "diffusion.joint_sampler": True,
                     "diffusion.controller_target": "threshold", "diffusion.nfe_penalty": "λ",
                     "diffusion.controller_lr_scale": "c"},
    "diffpo-joint-eb": {"algorithm": "diffpo", "diffusion.joint_sampler": True,
                        "diffusion.controller_target": "eb", "diffusion.nfe_penalty": "λ",
                        "diffusion.controller_lr_scale": "c"},
}


def _apply_method(cfg: dict, args, method: str) -> None:
    """Set ``method``'s algorithm and overrides in ``cfg`` (``"λ"``: ``--nfe-penalty``, ``"c"``:
    ``--controller-lr-scale``)."""
    for key, value in METHODS[method].items():
        if key == "algorithm":
            cfg["algorithm"] = value
        else:
            _set(cfg, key, {"λ": args.nfe_penalty, "c": args.controller_lr_scale}.get(value, value)
                 if isinstance(value, str) else value)


def _cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (user + system)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def letters_base(args, data_dir: Path) -> dict:
    return {
        "model": {"name": args.model, "hidden_size": args.hidden, "num_layers": args.layers,
                  "num_heads": 4},
        "data": {"task": "letters", "path": str(data_dir / "train.jsonl"),
                 "eval_path": str(data_dir / "heldout.jsonl"), "n_eval": args.n_eval,
                 "letters": {"k": args.k, "alphabet_size": args.alphabet}},
        "diffusion": {"gen_length": args.k, "block_length": args.k,
                      "eval_thresholds": args.eval_thresholds, "eval_gammas": args.eval_gammas,
                      "eval_batch_size": 1024, "threshold_grid": args.grid,
                      "gamma_grid": args.gamma_grid},
        "device": "cpu",
    }


# The arguments each cached piece depends on: data and SFT, and the RL runs (with evaluation).
DATA_SFT_ARGS = ("k", "alphabet", "n_train", "n_eval", "model", "hidden", "layers", "sft_lr",
                 "sft_warmup", "sft_eps", "sft_batch", "sft_chunk", "sft_max", "sft_target")
RL_ARGS = ("rl_steps", "rl_lr", "prompts", "group", "inner_updates", "temperature",
           "rl_threshold", "nfe_penalty", "controller_lr_scale", "grid", "gamma_grid",
           "eval_thresholds", "eval_gammas")


def _args_of(args, names: tuple[str, ...]) -> dict:
    return {name: getattr(args, name) for name in names}


def check_cache(args) -> None:
    """Stop if ``--cache`` holds data or an SFT model made with other arguments.

    Raises:
        SystemExit: naming the arguments that differ and the fix.
    """
    path = args.cache / "data_sft_args.json"
    want = _args_of(args, DATA_SFT_ARGS)
    if not path.is_file():
        if (args.cache / "heldout.jsonl").is_file():
            raise SystemExit(f"{args.cache} holds data of unknown arguments; use an empty "
                             "--cache")
        path.write_text(json.dumps(want, indent=1))
        return
    have = json.loads(path.read_text())
    diff = [f"--{k.replace('_', '-')} {have.get(k)} (cached) vs {v}" for k, v in want.items()
            if have.get(k) != v]
    if diff:
        raise SystemExit(f"{args.cache} was made with other data/SFT arguments: "
                         + "; ".join(diff) + ". Use another --cache or the cached values.")


def letters_data(args, data_dir: Path) -> None:
    """Training and held-out problems, once (fixed seeds); held-out prompts are unseen in
    training and balanced over the kinds (``n_eval // 3`` each, interleaved)."""
    if (data_dir / "heldout.jsonl").is_file():
        return
    train_set = letters.generate(args.n_train, 1000, args.k, args.alphabet)
    seen = {(p.kind, p.letters) for p in train_set}
    per_kind = args.n_eval // len(letters.KINDS)
    chosen: dict[str, list] = {kd: [] for kd in letters.KINDS}
    used: set = set()
    for p in letters.generate(20 * args.n_eval, 2000, args.k, args.alphabet):
        key = (p.kind, p.letters)
        if key in seen or key in used or len(chosen[p.kind]) >= per_kind:
            continue
        used.add(key)
        chosen[p.kind].append(p)
    held = [chosen[kd][i] for i in range(per_kind) for kd in letters.KINDS]
    letters.write_jsonl(train_set, data_dir / "train.jsonl")
    letters.write_jsonl(held, data_dir / "heldout.jsonl")


def letters_sft(args, data_dir: Path) -> tuple[Path, list[dict]]:
    """SFT (cached) in chunks until greedy held-out accuracy at τ = 1 (one token per step)
    reaches ``--sft-target`` or ``--sft-max`` steps."""
    out = data_dir / "sft"
    history_path = out / "sft_history.json"
    if history_path.is_file():
        return out, json.loads(history_path.read_text())
    cfg = letters_base(args, data_dir)
    cfg.update(algorithm="mdm-sft", batch_size=args.sft_batch, output_dir=str(out), seed=0,
               log_every=100)
    cfg["optimizer"] = {"lr": args.sft_lr}
    cfg["schedule"] = {"kind": "constant", "warmup_steps": args.sft_warmup}
    cfg["diffusion"].update(eval_thresholds=[0.0, 1.0], eval_gammas=[], sft_eps=args.sft_eps)
    history: list[dict] = []
    steps, seconds, cpu = 0, 0.0, 0.0
    while steps < args.sft_max:
        steps += args.sft_chunk
        t0, c0 = time.time(), _cpu_seconds()
        result = train({**cfg, "max_steps": steps,
                        "resume": latest_checkpoint(out) is not None})
        seconds += time.time() - t0
        cpu += _cpu_seconds() - c0
        m = result.metrics
        history.append({"step": steps, "accuracy@tau1": m["eval/accuracy@tau1"],
                        "accuracy@tau0": m["eval/accuracy@tau0"], "seconds": seconds,
                        "cpu_seconds": cpu})
        print(f"SFT step {steps}: held-out accuracy τ1 (NFE {args.k}) "
              f"{m['eval/accuracy@tau1']:.3f}, τ0 (NFE 1) {m['eval/accuracy@tau0']:.3f} "
              f"({seconds:.0f} s)", flush=True)
        if m["eval/accuracy@tau1"] >= args.sft_target:
            break
    history_path.write_text(json.dumps(history, indent=2))
    return out, history


def load_algo(args, data_dir: Path, init: Path, method: str = "d1"):
    """A :class:`DiffusionAlgorithm` holding the weights (and controller) of ``init``."""
    from types import SimpleNamespace

    from training.config import parse_config
    from training.trainers.diffusion import DiffusionAlgorithm

    cfg = letters_base(args, data_dir)
    scratch = data_dir / "scratch"
    cfg.update(output_dir=str(scratch))
    _apply_method(cfg, args, method)
    _set(cfg, "diffusion.init_from", str(init))
    _set(cfg, "diffusion.sampler", "threshold")
    _set(cfg, "diffusion.temperature", args.temperature)
    algo = DiffusionAlgorithm(parse_config(cfg), scratch)
    algo.setup(SimpleNamespace(device=torch.device("cpu")))
    algo.policy.eval()
    return algo


def _kinds(problems) -> list[str]:
    return [p.key[0] for p in problems]


def per_kind_eval(algo) -> dict[str, dict[str, dict[str, float]]]:
    """Greedy held-out evaluation, ``{setting: {kind or "all": {accuracy, nfe[, value], n}}}``."""
    with torch.no_grad():
        res = algo.evaluate_settings(per_problem=True)
    kinds = _kinds(algo.eval_problems)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, r in res.items():
        out[name] = {}
        for kind in ALL:
            idx = [i for i, kd in enumerate(kinds) if kind == "all" or kd == kind]
            row = {"accuracy": statistics.fmean(float(r["rewards"][i] == 1.0) for i in idx),
                   "nfe": statistics.fmean(r["nfes"][i] for i in idx), "n": len(idx)}
            if "values" in r:
                vals = [r["values"][i] for i in idx]
                row["value"] = statistics.fmean(vals)
                row["value_hist"] = {f"{v:g}": vals.count(v) for v in sorted(set(vals))}
            out[name][kind] = row
    return out


def sampled_tradeoff(args, algo) -> dict[str, dict[str, dict[str, float]]]:
    """What a controller is trained on, at the start: sampled decoding (the rollout
    temperature) of the held-out prompts at each controller grid value, 4 samples per prompt;
    per kind: accuracy, NFE and the DiFFPO reward ``r - λ·NFE/L``."""
    prompts = algo.eval_prompts.repeat_interleave(4, 0)
    attn = algo.eval_prompt_attn.repeat_interleave(4, 0)
    problems = [p for p in algo.eval_problems for _ in range(4)]
    kinds = _kinds(problems)
    out: dict[str, dict[str, dict[str, float]]] = {}
    settings = [("threshold", t, f"tau{t:g}") for t in args.grid]
    settings += [("eb", g, f"eb_g{g:g}") for g in args.gamma_grid]
    for sampler, value, name in settings:
        gen = torch.Generator().manual_seed(0)
        kw = {"threshold" if sampler == "threshold" else "gamma":
              torch.full((prompts.shape[0],), float(value))}
        with torch.no_grad():
            res = algo._decode(prompts, attn, sampler, args.temperature, gen, **kw)
        rewards = [algo.reward_fn(t, p) for t, p in
                   zip(algo._texts(res.completion), problems, strict=True)]
        nfe = res.nfe.float().tolist()
        out[name] = {}
        for kind in ALL:
            idx = [i for i, kd in enumerate(kinds) if kind == "all" or kd == kind]
            acc = statistics.fmean(float(rewards[i] == 1.0) for i in idx)
            mean_nfe = statistics.fmean(nfe[i] for i in idx)
            out[name][kind] = {"accuracy": acc, "nfe": mean_nfe,
                               "penalized": acc - args.nfe_penalty * mean_nfe / args.k}
    return out


def surrogate_fidelity(args, algo) -> dict[str, dict[str, dict[str, float]]]:
    """d1's one-step and DiFFPO's two-stage surrogates (sampling distribution, unmasked prompt)
    against the sampler's own per-token log-probs, on rollouts of the start model.

    Rollouts: held-out prompts x ``--fidelity-samples``, threshold sampler at the rollout
    temperature, (a) τ = ``--rl-threshold`` (d1's and DiFFPO-fixed's rollouts) and (b) τ drawn
    uniformly from the controller grid (the untrained controller's rollouts). The two-stage
    numbers average over every split ``τ_s ∈ {0..T-1}`` (the split's exact distribution).
    """
    from functools import partial

    from training.losses.diffusion import d1_logps, two_stage_logps
    from training.sampling import sampling_logprobs

    lm, mask_id = algo.policy.lm, algo.policy.mask_token_id
    reps = args.fidelity_samples
    prompts = algo.eval_prompts.repeat_interleave(reps, 0)
    attn = algo.eval_prompt_attn.repeat_interleave(reps, 0)
    kinds = _kinds([p for p in algo.eval_problems for _ in range(reps)])
    lp_fn = partial(sampling_logprobs, temperature=args.temperature)
    pm = torch.zeros_like(prompts, dtype=torch.bool)
    am = None if bool(attn.all()) else torch.cat(
        [attn, torch.ones(attn.shape[0], args.k, dtype=attn.dtype)], 1)
    results: dict[str, dict[str, dict[str, float]]] = {}
    gen = torch.Generator().manual_seed(123)
    grid = torch.tensor(args.grid)
    for label in (f"tau{args.rl_threshold:g}", "grid-uniform"):
        if label == "grid-uniform":
            tau = grid[torch.randint(len(grid), (prompts.shape[0],), generator=gen)]
        else:
            tau = torch.full((prompts.shape[0],), args.rl_threshold)
        with torch.no_grad():
            out = algo._decode(prompts, attn, "threshold", args.temperature, gen, threshold=tau)
            comp, true = out.completion, out.sample_logprob
            d1 = d1_logps(lm, prompts, comp, mask_id, prompt_mask=pm, attention_mask=am,
                          logprob_fn=lp_fn)
            two = []  # (split, (N, L) logps, rows where the split is valid)
            for s in range(int(out.nfe.max())):
                split = torch.full((prompts.shape[0],), s)
                two.append((s, two_stage_logps(lm, prompts, comp, out.unmask_step, split,
                                               mask_id, prompt_mask=pm, attention_mask=am,
                                               logprob_fn=lp_fn)))
        nfe = out.nfe
        results[label] = {}
        for kind in ALL:
            rows = torch.tensor([kind == "all" or kd == kind for kd in kinds])
            t = true[rows].flatten()
            row: dict[str, float] = {"tokens": int(t.numel()),
                                     "mean_nfe": float(nfe[rows].float().mean())}
            for name, est_list in (("d1", [(None, d1)]), ("two_stage", two)):
                diffs, xs, ys, seq = [], [], [], []
                weights = []  # each split τ_s weighs 1/T of its row
                for s, est in est_list:
                    valid = rows & ((nfe > s) if s is not None else torch.ones_like(rows))
                    if not valid.any():
                        continue
                    w = (1.0 / nfe[valid].float()) if s is not None else torch.ones(
                        int(valid.sum()))
                    e, tt = est[valid], true[valid]
                    diffs.append(((e - tt).abs().mean(1), w))
                    seq.append(((e.sum(1) - tt.sum(1)).abs(), w))
                    xs.append(e.flatten())
                    ys.append(tt.flatten())
                    weights.append(w.repeat_interleave(e.shape[1]))
                wcat = torch.cat([w for _, w in diffs])
                mad = float((torch.cat([d for d, _ in diffs]) * wcat).sum() / wcat.sum())
                smad = float((torch.cat([d for d, _ in seq]) * wcat).sum() / wcat.sum())
                x, y, wt = torch.cat(xs), torch.cat(ys), torch.cat(weights)
                mx, my = (wt * x).sum() / wt.sum(), (wt * y).sum() / wt.sum()
                cov = (wt * (x - mx) * (y - my)).sum()
                var = ((wt * (x - mx) ** 2).sum() * (wt * (y - my) ** 2).sum()).sqrt()
                row[f"{name}_mad"] = mad
                row[f"{name}_seq_mad"] = smad
                row[f"{name}_corr"] = float(cov / var) if float(var) > 1e-12 else float("nan")
                row[f"{name}_bias"] = float((wt * (x - y)).sum() / wt.sum())
            results[label][kind] = row
    return results


def letters_rl_run(args, data_dir: Path, sft_dir: Path, method: str, seed: int) -> dict:
    out = data_dir / "rl" / f"{method}_seed{seed}"
    cfg = letters_base(args, data_dir)
    cfg.update(batch_size=args.prompts, max_steps=args.rl_steps, seed=seed, output_dir=str(out),
               log_every=25)
    cfg["optimizer"] = {"lr": args.rl_lr}
    for key, value in {"diffusion.init_from": str(sft_dir), "diffusion.sampler": "threshold",
                       "diffusion.threshold": args.rl_threshold,
                       "diffusion.temperature": args.temperature,
                       "diffusion.group_size": args.group,
                       "diffusion.inner_updates": args.inner_updates}.items():
        _set(cfg, key, value)
    _apply_method(cfg, args, method)
    t0, c0 = time.time(), _cpu_seconds()
    train({**cfg, "resume": latest_checkpoint(out) is not None})  # an interrupted run goes on
    seconds, cpu = time.time() - t0, _cpu_seconds() - c0
    algo = load_algo(args, data_dir, out, method)
    settings = per_kind_eval(algo)
    return {"method": method, "seed": seed, "seconds": seconds, "cpu_seconds": cpu,
            "eval_cpu_seconds": _cpu_seconds() - c0 - cpu, "settings": settings,
            "made": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def letters_summary(runs: list[dict], methods: list[str]) -> dict:
    """``{method: {setting: {kind: {accuracy, accuracy_sd, accuracy_ci, nfe, nfe_sd, ...}}}}``."""
    out: dict = {}
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        out[method] = {}
        for setting in mine[0]["settings"]:
            out[method][setting] = {}
            for kind in ALL:
                vals = [r["settings"][setting][kind] for r in mine]
                row: dict[str, float] = {"n_seeds": len(vals)}
                for key in ("accuracy", "nfe", "value"):
                    if key in vals[0]:
                        m, sd, ci = _ci([v[key] for v in vals])
                        row.update({key: m, f"{key}_sd": sd, f"{key}_ci": ci})
                out[method][setting][kind] = row
    return out


def _git_state() -> dict:
    mine = ["bench/diffpo_frontier.py", "training/trainers/diffusion.py",
            "training/losses/diffusion.py", "training/sampling.py", "training/tasks/letters.py",
            "training/diffusion_model.py", "training/diffusion_config.py"]
    return {"commit": provenance.commit(),
            "dirty_own_files": provenance.changes(mine),
            "training_diff_vs_head": provenance.git("diff", "--shortstat", "HEAD", "--",
                                                    "training", "core", "simopt")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", default="diffpo_frontier", help="results file stem under --out")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench_diffpo_letters",
                   help="data, SFT model and RL runs (reused when the arguments match)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                   help="RL seeds (seeds 0 and 6 were the pilots that fixed the learning "
                   "rates)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--k", type=int, default=4, help="letters per prompt (= answer length)")
    p.add_argument("--alphabet", type=int, default=10, help="letters drawn from the first N")
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--n-eval", type=int, default=576,
                   help="held-out problems (n_eval // 3 per kind)")
    p.add_argument("--model", default="tiny-mdm-rope")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--sft-lr", type=float, default=1e-3)
    p.add_argument("--sft-warmup", type=int, default=50)
    p.add_argument("--sft-eps", type=float, default=0.05, help="smallest SFT mask rate")
    p.add_argument("--sft-batch", type=int, default=64)
    p.add_argument("--sft-chunk", type=int, default=1000, help="SFT steps between evaluations")
    p.add_argument("--sft-max", type=int, default=6000)
    p.add_argument("--sft-target", type=float, default=0.97,
                   help="stop SFT at this greedy held-out accuracy at τ = 1")
    p.add_argument("--rl-steps", type=int, default=400)
    p.add_argument("--rl-lr", type=float, default=1e-4)
    p.add_argument("--prompts", type=int, default=8, help="prompts per RL step")
    p.add_argument("--group", type=int, default=4, help="completions per prompt")
    p.add_argument("--inner-updates", type=int, default=2, help="μ")
    p.add_argument("--temperature", type=float, default=0.7, help="rollout temperature")
    p.add_argument("--rl-threshold", type=float, default=0.9,
                   help="the fixed rollout threshold of d1 and DiFFPO-fixed")
    p.add_argument("--nfe-penalty", type=float, default=0.2,
                   help="λ of the joint runs' reward r - λ·NFE/k")
    p.add_argument("--controller-lr-scale", type=float, default=10.0,
                   help="the controller head's learning rate / --rl-lr (joint runs)")
    p.add_argument("--grid", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9],
                   help="thresholds the controller chooses from")
    p.add_argument("--gamma-grid", type=float, nargs="+", default=[0.0, 0.5, 1.5, 3.0, 6.0],
                   help="entropy bounds the eb controller chooses from")
    p.add_argument("--eval-thresholds", type=float, nargs="+",
                   default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    p.add_argument("--eval-gammas", type=float, nargs="+",
                   default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0])
    p.add_argument("--fidelity-samples", type=int, default=8,
                   help="rollouts per held-out prompt for the surrogate fidelity")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--sft-only", action="store_true",
                   help="stop after the data, the SFT model and the start analyses")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("SOCRATES_RUNS_DIR", str(args.cache / "registry"))
    args.cache.mkdir(parents=True, exist_ok=True)
    check_cache(args)
    git_state = _git_state()
    command = " ".join(["python", *sys.argv])
    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t0, c0 = time.time(), _cpu_seconds()
    sft_made_now = not (args.cache / "sft" / "sft_history.json").is_file()
    letters_data(args, args.cache)
    sft_dir, history = letters_sft(args, args.cache)
    t1, c1 = time.time(), _cpu_seconds()
    start_algo = load_algo(args, args.cache, sft_dir)
    start = per_kind_eval(start_algo)
    for setting, r in start.items():
        print(f"SFT start {setting}: " + ", ".join(
            f"{kd} {r[kd]['accuracy']:.3f}@{r[kd]['nfe']:.2f}" for kd in ALL), flush=True)
    tradeoff = sampled_tradeoff(args, start_algo)
    fidelity = surrogate_fidelity(args, start_algo)
    for label, rows in fidelity.items():
        for kd in ALL:
            r = rows[kd]
            print(f"fidelity {label} {kd}: d1 MAD {r['d1_mad']:.3f} corr {r['d1_corr']:.3f}; "
                  f"two-stage MAD {r['two_stage_mad']:.3f} corr {r['two_stage_corr']:.3f}",
                  flush=True)
    t2, c2 = time.time(), _cpu_seconds()
    if args.sft_only:
        return
    runs_path = args.cache / "rl_runs.json"
    runs: list[dict] = json.loads(runs_path.read_text()) if runs_path.is_file() else []
    rl_args = _args_of(args, RL_ARGS)
    stale = sorted({k for r in runs for k, v in r["rl_args"].items() if rl_args.get(k) != v})
    if stale:
        raise SystemExit(f"{runs_path} holds RL runs made with other arguments ("
                         + ", ".join(f"--{k.replace('_', '-')}" for k in stale)
                         + "); use another --cache (a copy of this one without rl/ and "
                         "rl_runs.json keeps the data and SFT model)")
    made_now = 0
    for seed in args.seeds:
        for method in args.methods:
            if any(r["method"] == method and r["seed"] == seed for r in runs):
                continue
            made_now += 1
            run = letters_rl_run(args, args.cache, sft_dir, method, seed) | {"rl_args": rl_args}
            runs.append(run)
            runs_path.write_text(json.dumps(runs, indent=1))
            shown = run["settings"].get("controller",
                                        run["settings"][f"tau{args.rl_threshold:g}"])
            print(f"{method} seed {seed}: {run['seconds']:.0f} s, " + ", ".join(
                f"{kd} {shown[kd]['accuracy']:.3f}@{shown[kd]['nfe']:.2f}" for kd in ALL),
                flush=True)
    runs = [r for r in runs if r["method"] in args.methods and r["seed"] in args.seeds]
    t3, c3 = time.time(), _cpu_seconds()
    summary = letters_summary(runs, args.methods)
    comps = comparisons(runs, start, args.methods)
    matched = matched_nfe(runs, args.methods)
    rl_cpu = sum(r["cpu_seconds"] + r["eval_cpu_seconds"] for r in runs)
    seconds = {"wall_this_invocation": t3 - t0, "cpu_this_invocation": c3 - c0,
               "sft_wall": history[-1]["seconds"], "sft_cpu": history[-1]["cpu_seconds"],
               "start_analysis_wall": t2 - t1, "start_analysis_cpu": c2 - c1,
               "rl_wall": sum(r["seconds"] for r in runs), "rl_cpu": rl_cpu,
               "rl_runs_made_now": made_now, "rl_runs": len(runs), "sft_made_now": sft_made_now,
               "load_average_at_end": os.getloadavg()[0]}
    seconds["total_cpu"] = seconds["sft_cpu"] + seconds["start_analysis_cpu"] + rl_cpu
    n_kind = start["tau1"]["perm"]["n"]
    args.out.mkdir(parents=True, exist_ok=True)
    plot_letters(start, summary, comps, args.out / f"{args.name}.png",
                 title=f"letters k={args.k}, {args.n_eval} held-out ({n_kind}/kind), greedy; "
                       f"RL seeds {args.seeds}: lines = seed means, stars = controller ± 95% CI",
                 runs=runs)
    meta = {"git": git_state, "command": command, "began": began,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "seconds": seconds}
    verdict = claim_verdict(comps)
    (args.out / f"{args.name}.json").write_text(json.dumps(
        {"meta": meta, "args": {k: str(v) if isinstance(v, Path) else v
                                for k, v in vars(args).items()},
         "sft_history": history, "sft_start": start, "sft_start_sampled": tradeoff,
         "surrogate_fidelity": fidelity, "runs": runs, "summary": summary,
         "comparisons": comps, "matched_nfe": matched, "verdict": verdict}, indent=1))
    write_letters_markdown(args, meta, history, start, tradeoff, fidelity, summary, runs, comps,
                           matched, verdict)


if __name__ == "__main__":
    main()
