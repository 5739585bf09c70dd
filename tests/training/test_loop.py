"""The shared training loop: every parameter trains, accumulation, exact resume, divergence."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from simopt.errors import InputError, SocratesError
from tests.training.configs import tiny_lm_config
from training import train
from training.config import parse_config
from training.loop import NonFiniteLossError, TrainingLoop, read_metrics
from training.runs import RunRegistry
from training.trainers.preference import PreferenceAlgorithm


def _params(run_dir, step):
    return torch.load(run_dir / "checkpoints" / f"step_{step}.pt", weights_only=False)["model"]


@pytest.mark.parametrize(
    ("algorithm", "model", "extra"),
    [
        ("dpo", "tiny-llama", {}),
        ("ipo", "tiny-gpt2", {}),
        ("simpo", "tiny-llama", {}),
        ("mallowspo-theta", "tiny-llama", {"preference.sft_steps": 3}),
        ("mallowspo-phi", "tiny-gpt2", {"preference.sft_steps": 3}),
    ],
)
def test_one_step_changes_every_trainable_parameter(tmp_path, algorithm, model, extra):
    cfg = parse_config(tiny_lm_config(algorithm=algorithm, max_steps=1, **{"model.name": model},
                                      **extra))
    algo = PreferenceAlgorithm(cfg, tmp_path)
    before = {k: v.detach().clone() for k, v in algo.model.named_parameters()}
    TrainingLoop(cfg, algo, tmp_path).run()
    after = dict(algo.model.named_parameters())
    unchanged = [k for k, v in before.items() if torch.equal(v, after[k].detach())]
    assert not unchanged, f"{algorithm} left parameters untouched: {unchanged}"
    # the frozen reference (if any) did not move
    if algo.reference is not None:
        for k, v in algo.reference.named_parameters():
            assert not v.requires_grad, k


def test_gradient_accumulation_1x8_equals_8x1(tmp_path):
    # Large Adam eps keeps the update continuous in the gradient, so fp-rounding differences
    # between one padded batch of 8 and eight unpadded batches of 1 cannot flip a sign.
    common = {"max_steps": 2, "optimizer.eps": 1e-3, "max_grad_norm": 0.5}
    a = parse_config(tiny_lm_config(batch_size=8, grad_accum=1, **common))
    b = parse_config(tiny_lm_config(batch_size=1, grad_accum=8, **common))
    algo_a, algo_b = PreferenceAlgorithm(a, tmp_path / "a"), PreferenceAlgorithm(b, tmp_path / "b")
    TrainingLoop(a, algo_a, tmp_path / "a").run()
    TrainingLoop(b, algo_b, tmp_path / "b").run()
    rows_a = read_metrics(tmp_path / "a/metrics.jsonl")
    rows_b = read_metrics(tmp_path / "b/metrics.jsonl")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("loss/total", "reward/margin", "reward/accuracy", "optim/grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), key
    moved = 0.0
    for (k, va), (_, vb) in zip(algo_a.model.named_parameters(), algo_b.model.named_parameters(),
                                strict=True):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=k)
    for va, v0 in zip(algo_a.model.parameters(), algo_a.reference.parameters(), strict=True):
        moved = max(moved, float((va - v0).detach().abs().max()))
    assert moved > 1e-3  # the comparison is about real updates, not two untouched models


def test_resume_is_bit_identical(runs_dir, tmp_path):
    full = tmp_path / "full"
    cfg = tiny_lm_config(algorithm="mallowspo-theta", max_steps=6, save_every=3,
                         output_dir=str(full), **{"preference.sft_steps": 2,
                                                  "preference.reference": "precomputed",
                                                  "schedule.kind": "cosine",
                                                  "schedule.warmup_steps": 2})
    train(cfg)
    # a second folder that stopped right after the step-3 checkpoint
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "checkpoints" / "step_6.pt").unlink()
    (part / "reference_cache.pt").unlink()  # rebuilt deterministically on resume
    train({**cfg, "output_dir": str(part), "resume": True})

    a, b = _params(full, 6), _params(part, 6)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a, rows_b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]  # truncated, no duplicates
    for ra, rb in zip(rows_a, rows_b, strict=True):
        same = {k: v for k, v in ra.items() if not k.startswith("perf/")}
        assert same == {k: v for k, v in rb.items() if not k.startswith("perf/")}


class ExplodingAlgorithm:
    """Least squares on one weight; the loss turns NaN at ``bad_step``."""

    def __init__(self, bad_step):
        self.model = torch.nn.Linear(1, 1)
        self.bad_step = bad_step
        self.calls = 0

    def setup(self, accelerator):
        pass

    def next_batch(self, step, rng):
        self.calls += 1
        return step

    def compute_loss(self, step):
        loss = (self.model(torch.ones(1, 1)) - 2.0).pow(2).mean()
        if step >= self.bad_step:
            loss = loss * float("nan")
        return loss, {"loss/mse": float(loss.detach())}

    def evaluate(self):
        return {}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_nan_stops_with_clear_error_and_keeps_last_good_checkpoint(runs_dir, monkeypatch):
    monkeypatch.setitem(__import__("training.trainers", fromlist=["TRAINERS"]).TRAINERS, "dpo",
                        lambda cfg, run_dir: ExplodingAlgorithm(bad_step=5))
    cfg = tiny_lm_config(max_steps=10, save_every=2, keep_checkpoints=5)
    with pytest.raises(NonFiniteLossError, match=r"diverged at step 5: loss/total is nan.*"
                                                 r"step_4\.pt.*Lower optimizer.lr") as info:
        train(cfg)
    assert isinstance(info.value, SocratesError)
    [rec] = RunRegistry().list()
    assert rec.status == "failed" and "NonFiniteLossError" in rec.error
    run_dir = runs_dir / rec.id
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["step_2.pt", "step_4.pt"]
    state = torch.load(run_dir / "checkpoints" / "step_4.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"


@pytest.mark.parametrize(("kind", "hf_name"), [("constant", "constant_with_warmup"),
                                                ("linear", "linear"), ("cosine", "cosine")])
def test_lr_schedule_matches_transformers(kind, hf_name):
    from transformers import get_scheduler

    from training.loop import make_scheduler

    cfg = parse_config({"algorithm": "dpo", "max_steps": 20,
                        "schedule": {"kind": kind, "warmup_steps": 5}})
    ours = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    s_ours = make_scheduler(cfg, ours)
    s_theirs = get_scheduler(hf_name, theirs, num_warmup_steps=5, num_training_steps=20)
    for _ in range(cfg.max_steps):
        assert s_ours.get_last_lr()[0] == pytest.approx(s_theirs.get_last_lr()[0], abs=1e-12)
        ours.step()
        theirs.step()
        s_ours.step()
        s_theirs.step()


def test_resume_refuses_a_changed_config(runs_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_lm_config(max_steps=2, output_dir=str(out))
    train(cfg)
    with pytest.raises(InputError, match=r"config field 'preference.beta' was 0.1 .* is 0.3 now"):
        train({**cfg, "resume": True, "max_steps": 4, "preference": {"beta": 0.3}})
    # bookkeeping may change: more steps continue the same run
    result = train({**cfg, "resume": True, "max_steps": 3})
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    assert result.metrics["step"] == 3
