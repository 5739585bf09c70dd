"""OPD+ / OPD / GKD trainer: sampling and scoring, advantage wiring, teacher, resume, configs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from simopt.errors import InputError
from tests.training.configs import with_overrides
from training import train
from training.config import parse_config
from training.loop import TrainingLoop, read_metrics
from training.trainers.distill import (
    DistillAlgorithm,
    Rollout,
    completion_logits,
    left_pad,
    load_prompt_file,
    sample_completions,
    token_logps,
)

TINY_TEACHER = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "sft_steps": 8,
                "sft_batch_size": 16, "sft_examples": 64}


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory):
    """One folder of cached teachers for the whole module: each teacher is trained once."""
    return str(tmp_path_factory.mktemp("teachers"))


def distill_config(teacher_cache, **overrides):
    cfg = {
        "algorithm": "opd+",
        "model": {"name": "tiny-llama", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "data": {"task": "arithmetic", "n_train": 16, "n_eval": 8,
                 "arithmetic": {"max_operand": 9, "operations": "+"}},
        "batch_size": 4,
        "max_steps": 1,
        "optimizer": {"lr": 1e-2},
        "distill": {"max_new_tokens": 3, "rollouts_per_prompt": 2, "eval_samples": 1,
                    "teacher": {**TINY_TEACHER, "cache_dir": teacher_cache}},
    }
    return with_overrides(cfg, overrides)


# ---------------------------------------------------------------------------------------------
# Sampling and scoring against an independent per-row computation


def _row_logps(model, prompt, completion):
    """Log-probs of ``completion`` after ``prompt`` from one unpadded forward (no cache)."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(completion)]
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


def test_cached_greedy_and_padded_scoring_match_unpadded_rows(teacher_cache):
    algo = DistillAlgorithm(parse_config(distill_config(teacher_cache)), "unused")
    model = algo.teacher  # trained a little: less flat than the student
    prompts = [p.ids for p in algo.train_prompts[:6]]
    ids, mask = left_pad(prompts, algo.pad_id)
    with torch.no_grad():
        comp, cmask = sample_completions(model, ids, mask, 4, algo.eos_id, algo.pad_id,
                                         greedy=True)
        for i, prompt in enumerate(prompts):  # greedy by repeated full forwards, one row
            seq = list(prompt)
            for t in range(comp.shape[1]):
                if not cmask[i, t]:
                    break
                nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
                assert nxt == int(comp[i, t])
                seq.append(nxt)
        gen = torch.Generator().manual_seed(3)
        comp, cmask = sample_completions(model, ids, mask, 4, algo.eos_id, algo.pad_id,
                                         generator=gen)
        logp = token_logps(completion_logits(model, ids, mask, comp, cmask), comp)
    for i, prompt in enumerate(prompts):
        n = int(cmask[i].sum())
        ref = _row_logps(model, prompt, comp[i, :n].tolist())
        torch.testing.assert_close(logp[i, :n], ref, rtol=1e-4, atol=1e-5)
        assert (comp[i, n:] == algo.pad_id).all()  # nothing after EOS
        if n < comp.shape[1]:
            assert comp[i, n - 1] == algo.eos_id


def test_sampling_is_a_function_of_the_seed(teacher_cache):
    algo = DistillAlgorithm(parse_config(distill_config(teacher_cache)), "unused")
    a = algo._sample(np.random.default_rng(5))
    algo.sampler.load_state_dict({"epoch": 0, "position": 0})
    b = algo._sample(np.random.default_rng(5))
    assert torch.equal(a.completion, b.completion) and torch.equal(a.prompt_ids, b.prompt_ids)
    c = algo._sample(np.random.default_rng(6))
    assert not torch.equal(a.completion, c.completion)


# ---------------------------------------------------------------------------------------------
# Training: parameters, advantage wiring, GKD


def test_one_step_changes_every_student_parameter_and_never_the_teacher(teacher_cache, tmp_path):
    for algorithm in ("opd+", "opd", "gkd"):
        cfg = parse_config(distill_config(teacher_cache, algorithm=algorithm))
        algo = DistillAlgorithm(cfg, tmp_path / algorithm)
        before = {k: v.detach().clone() for k, v in algo.model.named_parameters()}
        teacher_before = {k: v.clone() for k, v in algo.teacher.state_dict().items()}
        TrainingLoop(cfg, algo, tmp_path / algorithm).run()
        after = dict(algo.model.named_parameters())
        unchanged = [k for k, v in before.items() if torch.equal(v, after[k].detach())]
        assert not unchanged, f"{algorithm} left parameters untouched: {unchanged}"
        for k, v in algo.teacher.state_dict().items():
            assert torch.equal(v, teacher_before[k]), k
        assert not any(p.requires_grad for p in algo.teacher.parameters())


def _trainer_grads(teacher_cache, algorithm, divergence, rollout):
    cfg = parse_config(distill_config(teacher_cache, algorithm=algorithm,
                                      **{"distill.divergence": divergence,
                                         "distill.clip_log_ratio": None}))
    algo = DistillAlgorithm(cfg, "unused")
    batch = Rollout.from_state({**rollout.to_state(), "old_logp": None, "teacher_logp": None,
                                "advantages": None})
    loss, _ = algo.compute_loss(batch)
    algo.model.zero_grad()
    loss.backward()
    return algo, {k: p.grad.clone() for k, p in algo.model.named_parameters()}


def _reference_grads(algo, rollout, advantage_fn):
    """``-Σ_t A_t ∇log π(y_t) / n`` from unpadded per-row forwards and a hand-written A."""
    algo.model.zero_grad()
    total, n = 0.0, rollout.completion_mask.sum()
    for i in range(rollout.completion.shape[0]):
        prompt = [t for t, m in zip(rollout.prompt_ids[i].tolist(),
                                    rollout.prompt_mask[i].tolist(), strict=True) if m]
        k = int(rollout.completion_mask[i].sum())
        completion = rollout.completion[i, :k].tolist()
        logp = _row_logps(algo.model, prompt, completion)
        with torch.no_grad():
            log_u = _row_logps(algo.teacher, prompt, completion) - logp
        total = total - (advantage_fn(log_u) * logp).sum()
    (total / n).backward()
    return {k: p.grad.clone() for k, p in algo.model.named_parameters()}


@pytest.mark.parametrize("divergence", ["reverse_kl", "forward_kl", "js"])
def test_first_step_gradient_is_the_policy_gradient_of_each_estimator(teacher_cache, divergence):
    base = DistillAlgorithm(parse_config(distill_config(teacher_cache)), "unused")
    rollout = base._sample(np.random.default_rng(0))
    # closed forms from the OPD+ table (f, w_f in terms of u = q/π)
    plus_adv = {"reverse_kl": lambda lu: lu - 1.0, "forward_kl": torch.exp,
                "js": lambda lu: 0.5 * torch.log((1 + torch.exp(lu)) / 2)}[divergence]
    stop_adv = {"reverse_kl": lambda lu: lu, "forward_kl": lambda lu: -torch.exp(lu) * lu,
                "js": lambda lu: -0.5 * (torch.exp(lu) * lu - (1 + torch.exp(lu))
                                         * torch.log((1 + torch.exp(lu)) / 2))}[divergence]
    algo_plus, g_plus = _trainer_grads(teacher_cache, "opd+", divergence, rollout)
    algo_stop, g_stop = _trainer_grads(teacher_cache, "opd", divergence, rollout)
    ref_plus = _reference_grads(algo_plus, rollout, plus_adv)
    ref_stop = _reference_grads(algo_stop, rollout, stop_adv)
    for k in g_plus:
        torch.testing.assert_close(g_plus[k], ref_plus[k], rtol=1e-4, atol=1e-6, msg=k)
        torch.testing.assert_close(g_stop[k], ref_stop[k], rtol=1e-4, atol=1e-6, msg=k)
    diff = torch.cat([(g_plus[k] - g_stop[k]).flatten() for k in g_plus])
    if divergence == "reverse_kl":
        # the advantages differ by the constant -1: the gradients differ by exactly the score
        # function ∇Σ_t log π(y_t) / n, which has expectation 0 (same expected gradient)
        score = _reference_grads(algo_plus, rollout, lambda lu: -torch.ones_like(lu))
        torch.testing.assert_close(diff, torch.cat([score[k].flatten() for k in g_plus]),
                                   rtol=1e-4, atol=1e-6)
    else:
        assert float(diff.norm()) > 1e-3 * float(torch.cat(
            [g.flatten() for g in g_plus.values()]).norm())


def _summed_trainer_grad(algo, rollouts):
    """``Σ_rollouts n_tokens · ∇ compute_loss``: the trainer's gradient summed over tokens."""
    total = None
    for rollout in rollouts:
        batch = Rollout.from_state({**rollout.to_state(), "old_logp": None,
                                    "teacher_logp": None, "advantages": None})
        loss, _ = algo.compute_loss(batch)
        algo.model.zero_grad()
        loss.backward()
        g = torch.cat([p.grad.flatten() for p in algo.model.parameters()]).double()
        g = g * float(batch.completion_mask.sum())
        total = g if total is None else total + g
    return total


@pytest.mark.parametrize("divergence", ["forward_kl", "js", "reverse_kl"])
def test_trainer_gradient_averages_to_the_exact_gradient_only_for_opd_plus(teacher_cache,
                                                                           divergence):
    """2048 rollouts: the trainer's OPD+ gradient, averaged, points along the exact
    full-vocabulary gradient (the GKD loss on the same rollouts); stop-gradient's points
    against it for forward KL and JS (near u = 1 its advantage is -(u - 1), OPD+'s is
    1 + (u - 1)), and along it for reverse KL (k1), where it is unbiased. A biased OPD+ (or
    an unbiased stop-gradient) fails this; measured: OPD+ 0.91-0.96 (0.77-0.85 reverse KL),
    stop-gradient -0.84 to -0.97 (0.93-0.96 reverse KL) over seeds 0-2."""
    algos = {
        algorithm: DistillAlgorithm(parse_config(distill_config(
            teacher_cache, algorithm=algorithm, batch_size=16,
            **{"distill.divergence": divergence, "distill.rollouts_per_prompt": 16,
               "distill.clip_log_ratio": None, "distill.teacher.sft_steps": 60})), "unused")
        for algorithm in ("gkd", "opd+", "opd")
    }
    rng = np.random.default_rng(0)
    rollouts = [algos["gkd"]._sample(rng) for _ in range(8)]
    assert sum(r.completion.shape[0] for r in rollouts) == 2048
    grads = {a: _summed_trainer_grad(algo, rollouts) for a, algo in algos.items()}

    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    plus, stop = cos(grads["opd+"], grads["gkd"]), cos(grads["opd"], grads["gkd"])
    if divergence == "reverse_kl":
        assert plus > 0.6 and stop > 0.8, (plus, stop)
    else:
        assert plus > 0.8 and stop < 0.0, (plus, stop)


def test_gkd_loss_is_the_full_vocabulary_divergence(teacher_cache):
    cfg = parse_config(distill_config(teacher_cache, algorithm="gkd",
                                      **{"distill.divergence": "jsd", "distill.beta": 0.3}))
    algo = DistillAlgorithm(cfg, "unused")
    rollout = algo._sample(np.random.default_rng(1))
    loss, metrics = algo.compute_loss(rollout)
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(rollout.completion.shape[0]):
            prompt = [t for t, m in zip(rollout.prompt_ids[i].tolist(),
                                        rollout.prompt_mask[i].tolist(), strict=True) if m]
            k = int(rollout.completion_mask[i].sum())
            ids = torch.tensor([prompt + rollout.completion[i, :k].tolist()])
            sl = slice(len(prompt) - 1, len(prompt) - 1 + k)
            p = torch.softmax(algo.model(input_ids=ids).logits[0, sl].double(), -1)
            q = torch.softmax(algo.teacher(input_ids=ids).logits[0, sl].double(), -1)
            m = 0.3 * q + 0.7 * p
            total += float((0.3 * q * (q / m).log() + 0.7 * p * (p / m).log()).sum())
            n += k
    # float32 forwards of a padded batch vs single rows; the divergence itself is small
    assert float(loss.detach()) == pytest.approx(total / n, rel=1e-3)
    assert metrics["div/full"] == pytest.approx(total / n, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# Resume, inner updates, end to end


def test_resume_mid_rollout_cycle_is_bit_identical(teacher_cache, runs_dir, tmp_path):
    full = tmp_path / "full"
    cfg = distill_config(teacher_cache, max_steps=6, save_every=3, grad_accum=2,
                         output_dir=str(full), **{"distill.inner_updates": 2,
                                                  "distill.clip_eps": 0.2,
                                                  "distill.student_sft_steps": 2})
    train(cfg)
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "checkpoints" / "step_6.pt").unlink()  # stopped after step 3: mid-cycle (3, 4)
    train({**cfg, "output_dir": str(part), "resume": True})
    a = torch.load(full / "checkpoints/step_6.pt", weights_only=False)["model"]
    b = torch.load(part / "checkpoints/step_6.pt", weights_only=False)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a, rows_b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        same = {k: v for k, v in ra.items() if not k.startswith("perf/")}
        assert same == {k: v for k, v in rb.items() if not k.startswith("perf/")}
    # inner updates: odd steps sample (ratio exactly 1), even steps reuse (the policy moved)
    assert rows_a[0]["policy/approx_kl"] == 0.0 and rows_a[0]["policy/ratio"] == 1.0
    assert rows_a[1]["policy/approx_kl"] > 0.0
    assert rows_a[1]["gen/length"] == rows_a[0]["gen/length"]  # same rollouts


def test_cli_run_end_to_end_and_teacher_is_cached(teacher_cache, runs_dir, tmp_path, capsys):
    import yaml

    from training.__main__ import main

    cfg = distill_config(teacher_cache, max_steps=3, eval_every=3)
    path = tmp_path / "opd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--json", "--set", "distill.divergence=forward_kl"]) == 0
    out = json.loads(capsys.readouterr().out)
    metrics = out["metrics"]
    for key in ("loss/total", "reward/mean", "div/estimate", "div/full", "gen/length",
                "optim/grad_norm", "perf/tokens_per_s", "eval/accuracy",
                "eval/teacher_accuracy", "eval/reverse_kl", "eval/forward_kl", "eval/js"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["eval/accuracy"] <= 1.0
    # the same teacher settings load the cached weights; another SFT length trains a new one
    a = DistillAlgorithm(parse_config(cfg), "unused")
    assert a.teacher_meta["cached"]
    b = DistillAlgorithm(parse_config(distill_config(
        teacher_cache, **{"distill.teacher.sft_steps": 9})), "unused")
    assert not b.teacher_meta["cached"] and b.teacher_meta["path"] != a.teacher_meta["path"]


# ---------------------------------------------------------------------------------------------
# User mistakes


def test_teacher_with_another_vocabulary_is_rejected(teacher_cache, tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=120, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "other")
    cfg = parse_config(distill_config(teacher_cache,
                                      **{"distill.teacher.name": str(tmp_path / "other")}))
    with pytest.raises(InputError, match=r"distill\.teacher\.name .*120 tokens.*student 100"):
        DistillAlgorithm(cfg, "unused")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"distill.divergence": "kl"}, "distill.divergence"),
        ({"distill.gamma": 1.5}, "distill.gamma"),
        ({"distill.max_new_tokens": 0}, "distill.max_new_tokens"),
        ({"distill.temperature": 0.7}, "distill.temperature"),
        ({"distill.teacher.sft_steps": -1}, "distill.teacher.sft_steps"),
        ({"distill.teacher.hidden_size": 30, "distill.teacher.num_heads": 4},
         "distill.teacher.hidden_size"),
        ({"distill.divergence": "alpha", "distill.alpha": 1.0}, "distill.alpha"),
        ({"data.task": "bandit"}, "data.task"),
    ],
)
def test_config_errors_name_the_field(teacher_cache, override, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        parse_config(distill_config(teacher_cache, **override))


def test_prompt_file(tmp_path, teacher_cache):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "1+1=", "answer": "2"}\n'
                    '{"prompt": [{"role": "user", "content": "2+2="}], "answer": 4}\n')
    assert load_prompt_file(path) == [("1+1=", "2"), ("user: 2+2=\nassistant: ", "4")]
    path.write_text('{"prompt": "1+1="}\n{"question": "x"}\n')
    with pytest.raises(InputError, match=r"prompts\.jsonl:2: .*'prompt'"):
        load_prompt_file(path)
    path.write_text('{"prompt": "1+1="}\n{"prompt": "2+3="}\n')
    cfg = parse_config(distill_config(teacher_cache, **{"data.task": None,
                                                        "data.path": str(path)}))
    with pytest.raises(InputError, match="answer"):
        DistillAlgorithm(cfg, "unused")  # a preset teacher needs answers to be trained on


def test_opd_divergences_example_runs_both_estimators(teacher_cache, runs_dir, tmp_path,
                                                      monkeypatch):
    """The example/bench driver, shrunk: same start for both estimators, curves recorded."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "opd_divergences.py"
    spec = importlib.util.spec_from_file_location("opd_divergences_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    tiny = distill_config(teacher_cache)
    monkeypatch.setattr(example, "STUDY_CONFIG", {
        k: v for k, v in tiny.items() if k not in ("algorithm", "max_steps")})
    lines = []
    results = example.run_study(["forward_kl"], ["opd", "opd+"], steps=2, eval_every=2,
                                seeds=[0], workdir=tmp_path, log=lines.append)
    assert set(results) == {("opd", "forward_kl", 0), ("opd+", "forward_kl", 0)}
    stop, plus = results[("opd", "forward_kl", 0)], results[("opd+", "forward_kl", 0)]
    assert stop[0] == plus[0]  # the same warm-started student before distillation
    assert [r["step"] for r in plus if "eval/accuracy" in r] == [0, 2]
    assert len(lines) == 2 and "forward_kl" in lines[0]
