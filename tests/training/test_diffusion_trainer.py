"""Masked-diffusion trainers (mdm-sft, d1, diffpo): updates, on-policy ratio, zero advantages,
end-to-end runs with the frontier plot, exact resume, and config errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from simopt.errors import InputError
from tests.training.configs import with_overrides
from training import train
from training.config import parse_config
from training.diffusion_config import DiffusionRunConfig
from training.loop import TrainingLoop, read_metrics
from training.losses.diffusion import d1_logps, two_stage_logps
from training.trainers.diffusion import DiffusionAlgorithm, completion_mask


def tiny(algorithm: str, **overrides) -> dict:
    cfg = {
        "algorithm": algorithm,
        "model": {"name": "tiny-mdm", "hidden_size": 32, "num_layers": 1, "num_heads": 2},
        "data": {"task": "sudoku", "n_train": 16, "n_eval": 4},
        "batch_size": 2,
        "max_steps": 1,
        "diffusion": {"gen_length": 36, "block_length": 12, "group_size": 3,
                      "eval_thresholds": [0.5, 1.0], "temperature": 1.0},
    }
    return with_overrides(cfg, overrides)


def digit_reward(text: str, problem) -> float:
    """A reward that varies across random completions of an untrained model (test seam)."""
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


def make(tmp_path, algorithm, **overrides) -> DiffusionAlgorithm:
    algo = DiffusionAlgorithm(parse_config(tiny(algorithm, **overrides)), tmp_path)
    if algo.rl:
        algo.reward_fn = digit_reward
    return algo


class _Acc:
    device = torch.device("cpu")


@pytest.mark.parametrize(("algorithm", "extra"), [
    ("mdm-sft", {}),
    ("d1", {}),
    ("diffpo", {"diffusion.joint_sampler": False, "diffusion.sampler": "threshold"}),
    ("diffpo", {}),
])
def test_one_step_changes_trainable_parameters_not_the_reference(tmp_path, algorithm, extra):
    # NOTE: the controller's output layer starts at zero (uniform policy), so step 1 moves only
    # that layer of the controller; its hidden layers get gradient from step 2 on.
    joint = algorithm == "diffpo" and not extra
    extra = {**extra, "max_steps": 2 if joint else 1}
    cfg = parse_config(tiny(algorithm, **extra))
    algo = make(tmp_path, algorithm, **extra)
    before = {k: v.detach().clone() for k, v in algo.model.named_parameters()}
    ref_before = ({k: v.clone() for k, v in algo.reference.state_dict().items()}
                  if algo.reference is not None else None)
    TrainingLoop(cfg, algo, tmp_path).run()
    after = dict(algo.policy.named_parameters())
    unchanged = [k for k, v in before.items() if torch.equal(v, after[k].detach())]
    assert not unchanged, f"{algorithm} left parameters untouched: {unchanged}"
    if cfg.uses_controller():
        assert any(k.startswith("controller.") for k in before)
    if ref_before is not None:
        for k, v in algo.reference.state_dict().items():
            assert torch.equal(v, ref_before[k]), k
        assert not any(p.requires_grad for p in algo.reference.parameters())
    else:
        assert algorithm == "mdm-sft"


@pytest.mark.parametrize("algorithm", ["d1", "diffpo"])
def test_on_policy_ratio_is_one_then_moves_on_inner_step(tmp_path, algorithm):
    algo = make(tmp_path, algorithm, **{"diffusion.inner_updates": 2})
    algo.setup(_Acc())
    rng = __import__("numpy").random.default_rng(0)
    batch = algo.next_batch(1, rng)
    # old log-probs from an independent forward of the sampling policy, before any update
    # (inner update 0's prompt mask and split; d1 draws a new prompt mask per inner update)
    mu = batch.prompt_mask.shape[0]
    assert mu == 2 and batch.old_logps.shape[0] == mu
    assert not torch.equal(batch.prompt_mask[0], batch.prompt_mask[1])
    with torch.no_grad():
        if algorithm == "d1":
            independent = d1_logps(algo.policy, batch.prompt_ids, batch.completion, 100,
                                   prompt_mask=batch.prompt_mask[0])
        else:
            independent = two_stage_logps(algo.policy, batch.prompt_ids, batch.completion,
                                          batch.unmask_step, batch.split[0], 100,
                                          prompt_mask=batch.prompt_mask[0])
    loss, metrics = algo.compute_loss(batch)
    assert torch.allclose(batch.old_logps[0], independent, atol=1e-6)
    assert metrics["policy/ratio_max_dev"] == 0.0 and metrics["policy/ratio"] == 1.0
    # closed form on-policy (ratio 1, policy = reference so KL 0): the token mean of -w A,
    # plus the controller's -mean(A) (which is 0: group-mean advantages sum to 0 per group)
    mask = batch.completion_mask.float()
    w = batch.weights[0] if batch.weights is not None else torch.ones_like(mask)
    expected = -(w * batch.advantages[:, None] * mask).sum() / mask.sum()
    assert float(loss.detach()) == pytest.approx(float(expected), abs=1e-6)
    assert metrics["loss/kl"] == pytest.approx(0.0, abs=1e-9)
    assert batch.advantages.abs().sum() > 0
    # one SGD step, then the reused rollout (inner step 2) sees a ratio != 1
    loss.backward()
    with torch.no_grad():
        for p in algo.policy.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    again = algo.next_batch(2, rng)
    assert again is batch
    _, metrics2 = algo.compute_loss(again)
    assert metrics2["policy/ratio_max_dev"] > 0.0


@pytest.mark.parametrize("algorithm", ["d1", "diffpo"])
def test_equal_rewards_give_exactly_zero_gradient_without_kl(tmp_path, algorithm):
    algo = make(tmp_path, algorithm, **{"diffusion.beta": 0.0})
    algo.setup(_Acc())
    batch = algo.next_batch(1, __import__("numpy").random.default_rng(0))
    batch.reward = torch.full_like(batch.reward, 0.7)
    batch.advantages = algo.advantages(batch.reward)
    assert torch.equal(batch.advantages, torch.zeros_like(batch.advantages))
    loss, _ = algo.compute_loss(batch)
    loss.backward()
    grads = [p.grad for p in algo.policy.parameters() if p.grad is not None]
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)
    # unequal rewards do give a gradient (the check above can fail)
    algo.policy.zero_grad()
    batch.reward = torch.arange(batch.reward.numel(), dtype=torch.float32)
    batch.advantages = algo.advantages(batch.reward)
    algo.compute_loss(batch)[0].backward()
    assert any(torch.count_nonzero(p.grad) > 0 for p in algo.policy.parameters()
               if p.grad is not None)


def test_joint_sampler_decodes_with_the_drawn_thresholds_and_penalises_nfe(tmp_path):
    algo = make(tmp_path, "diffpo", **{"diffusion.nfe_penalty": 0.5,
                                       "diffusion.threshold_grid": [0.0, 1.0]})
    algo.setup(_Acc())
    batch = algo.next_batch(1, __import__("numpy").random.default_rng(3))
    tau = algo.policy.controller.grid[batch.ctrl_index]
    # threshold 0 commits a whole block per step (3 blocks), threshold 1 one token per step
    expected = torch.where(tau == 0.0, 3, 36)
    assert torch.equal(batch.nfe, expected)
    assert torch.allclose(batch.reward, batch.task_reward - 0.5 * batch.nfe / 36)
    assert 0 < int((tau == 0).sum()) < tau.numel()  # both choices drawn (seeded)


def test_eb_controller_on_letters_sets_the_entropy_bound_per_prompt(tmp_path):
    """controller_target eb: the controller picks gamma per prompt; gamma 0 commits one token
    per step (the untrained model's entropies are positive), a huge gamma a whole block."""
    algo = make(tmp_path, "diffpo", **{
        "data": {"task": "letters", "n_train": 12, "n_eval": 3,
                 "letters": {"k": 4, "alphabet_size": 8}},
        "diffusion.gen_length": 4, "diffusion.block_length": 4,
        "diffusion.controller_target": "eb", "diffusion.gamma_grid": [0.0, 1000.0],
        "diffusion.nfe_penalty": 0.5})
    algo.setup(_Acc())
    batch = algo.next_batch(1, __import__("numpy").random.default_rng(5))
    gamma = algo.policy.controller.grid[batch.ctrl_index]
    assert algo.policy.controller.parameter == "gamma"
    assert torch.equal(batch.nfe, torch.where(gamma == 0.0, 4, 1))
    assert 0 < int((gamma == 0).sum()) < gamma.numel()
    assert torch.allclose(batch.reward, batch.task_reward - 0.5 * batch.nfe / 4)
    loss, metrics = algo.compute_loss(batch)
    assert torch.isfinite(loss) and "controller/gamma" in metrics


def test_completion_mask_keeps_tokens_through_first_eos():
    comp = torch.tensor([[5, 6, 2, 7, 2], [2, 5, 5, 5, 5], [5, 5, 5, 5, 5]])
    assert completion_mask(comp, 2).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0],
                                                 [1, 1, 1, 1, 1]]


@pytest.mark.parametrize("algorithm", ["mdm-sft", "d1", "diffpo"])
def test_train_end_to_end_writes_metrics_and_frontier(runs_dir, algorithm):
    result = train(tiny(algorithm, max_steps=2))
    rows = read_metrics(result.output_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    last = rows[-1]
    for key in ("loss/total", "eval/accuracy", "eval/nfe", "eval/accuracy@tau0.5",
                "eval/nfe@tau1"):
        assert key in last, key
    assert last["eval/nfe@tau1"] == 36.0  # threshold 1: one token per step
    if algorithm != "mdm-sft":
        assert {"reward/mean", "perf/nfe", "loss/policy", "loss/kl"} <= last.keys()
    if algorithm == "diffpo":
        assert "eval/accuracy@controller" in last and "loss/controller" in last
    png = result.output_dir / "frontier.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (result.output_dir / "frontier.json").is_file()


def test_resume_mid_inner_cycle_is_bit_identical(runs_dir, tmp_path):
    full = tmp_path / "full"
    cfg = tiny("diffpo", max_steps=4, save_every=3, output_dir=str(full),
               **{"diffusion.inner_updates": 2, "diffusion.sampler": "threshold",
                  "diffusion.threshold_grid": [0.0, 0.5, 1.0]})
    train(cfg)
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "checkpoints" / "step_4.pt").unlink()  # stopped after step 3: mid-cycle (3, 4)
    train({**cfg, "output_dir": str(part), "resume": True})
    a = torch.load(full / "checkpoints/step_4.pt", weights_only=False)["model"]
    b = torch.load(part / "checkpoints/step_4.pt", weights_only=False)["model"]
    assert any(k.startswith("controller.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a, rows_b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    timing = ("perf/step_time_s", "perf/tokens_per_s")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ({k: v for k, v in ra.items() if k not in timing}
                == {k: v for k, v in rb.items() if k not in timing})


def test_init_from_a_finished_sft_run(runs_dir, tmp_path):
    sft = train(tiny("mdm-sft", max_steps=1, output_dir=str(tmp_path / "sft")))
    algo = make(tmp_path / "rl", "d1", **{"diffusion.init_from": str(sft.output_dir)})
    saved = torch.load(sft.output_dir / "checkpoints/step_1.pt", weights_only=False)["model"]
    for k, v in algo.policy.state_dict().items():
        assert torch.equal(v, saved[k]), k
    for k, v in algo.reference.state_dict().items():  # the reference is the SFT model too
        assert torch.equal(v, saved["lm." + k]), k
    with pytest.raises(InputError, match="diffusion.init_from"):
        make(tmp_path / "bad", "d1", **{"diffusion.init_from": str(sft.output_dir),
                                        "model.hidden_size": 16})


@pytest.mark.parametrize(("overrides", "field"), [
    ({"diffusion.gen_length": 30, "diffusion.block_length": 12}, "diffusion.gen_length"),
    ({"diffusion.group_size": 1}, "diffusion.group_size"),
    ({"diffusion.clip_eps": 0}, "diffusion.clip_eps"),
    ({"diffusion.threshold_grid": [0.5, 1.5]}, "diffusion.threshold_grid"),
    ({"diffusion.nfe_penalty": 0.1}, "diffusion.nfe_penalty"),
    ({"diffusion.samplr": "eb"}, "diffusion.samplr"),
    ({"data.task": "arithmetic"}, "data.task"),
    ({"model.name": "tiny-llama"}, "model.name"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        parse_config(tiny("d1", **overrides))


def test_config_defaults_and_answer_length_error(tmp_path):
    cfg = parse_config(tiny("diffpo"))
    assert isinstance(cfg, DiffusionRunConfig)
    assert cfg.nfe_penalty() == 0.01 and cfg.uses_controller()
    assert parse_config(tiny("d1")).nfe_penalty() == 0.0
    with pytest.raises(InputError, match="diffusion.gen_length"):
        make(tmp_path, "mdm-sft", **{"diffusion.gen_length": 24})
