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


def _letters(algorithm: str, **overrides) -> dict:
    """A letters run (4-letter answers, one block) decoded one token per step at T = 0.7 with
    half the prompt masked in the ratio: the setting the importance-weight bug lived in."""
    return tiny(algorithm, **{
        "data": {"task": "letters", "n_train": 12, "n_eval": 3,
                 "letters": {"k": 4, "alphabet_size": 8}},
        "batch_size": 3,
        "diffusion.gen_length": 4, "diffusion.block_length": 4,
        "diffusion.sampler": "low_confidence", "diffusion.steps": 4,
        "diffusion.temperature": 0.7, "diffusion.p_mask_prompt": 0.5,
        "diffusion.inner_updates": 3, "diffusion.group_size": 4, **overrides})


def _sharpen(algo: DiffusionAlgorithm) -> None:
    """Perturb the mask predictor's weights (seeded) so its predictions depend strongly on the
    context: at initialisation they barely do, and every importance weight is about 1."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in algo.policy.lm.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)


def _logits_at(lm, prompt: torch.Tensor, completion: torch.Tensor, shown: torch.Tensor,
               mask_id: int) -> torch.Tensor:
    """``(G, V)`` logits over the completion of one row, given which completion tokens are shown
    (the others masked) and the prompt as passed (one forward pass, no library helpers)."""
    tail = torch.where(shown, completion, torch.full_like(completion, mask_id))
    with torch.no_grad():
        return lm(torch.cat([prompt, tail])[None])[0, prompt.numel():].float()


def test_is_weights_match_an_independent_recomputation_at_temperature_07_with_masking(
        tmp_path):
    """Every DiFFPO weight of every inner update, rebuilt token by token: numerator the
    tempered probability at the two-stage state of that update's split on the *real* prompt,
    denominator the tempered probability at the state the sampler actually unmasked the token
    in. The old weights (temperature-1 denominator, masked prompt in the numerator, one split
    for all updates) each fail this comparison, as the last asserts check."""
    algo = DiffusionAlgorithm(parse_config(_letters("diffpo", **{
        "diffusion.joint_sampler": False, "diffusion.is_cap": 50.0})), tmp_path)
    algo.reward_fn = lambda text, problem: float(len(set(text)))
    _sharpen(algo)
    algo.setup(_Acc())
    batch = algo.next_batch(1, __import__("numpy").random.default_rng(7))
    lm, mask_id, temp = algo.policy.lm, algo.policy.mask_token_id, 0.7
    mu, n, length = batch.weights.shape
    assert (mu, length) == (3, 4) and torch.equal(batch.nfe, torch.full((n,), 4))
    assert batch.prompt_mask.any() and not batch.prompt_mask.all()
    assert len({tuple(s.tolist()) for s in batch.split}) == mu  # a split per update
    want = torch.zeros(mu, n, length)
    den_t1 = torch.zeros(n, length)
    masked_num = torch.zeros(mu, n, length)
    for b in range(n):
        prompt, comp, steps = batch.prompt_ids[b], batch.completion[b], batch.unmask_step[b]
        for i in range(length):
            true_logits = _logits_at(lm, prompt, comp, steps < steps[i], mask_id)[i]
            den = torch.log_softmax(true_logits / temp, -1)[comp[i]]
            den_t1[b, i] = torch.log_softmax(true_logits, -1)[comp[i]]
            for j in range(mu):
                tau = int(batch.split[j, b])
                shown = steps < tau if steps[i] >= tau else torch.zeros_like(steps, dtype=bool)
                num = torch.log_softmax(_logits_at(lm, prompt, comp, shown, mask_id)[i] / temp,
                                        -1)[comp[i]]
                want[j, b, i] = (num - den).exp().clamp_max(50.0)
                masked = torch.where(batch.prompt_mask[j, b], mask_id, prompt)
                masked_num[j, b, i] = torch.log_softmax(
                    _logits_at(lm, masked, comp, shown, mask_id)[i] / temp, -1)[comp[i]]
    torch.testing.assert_close(batch.weights, want, atol=1e-4, rtol=1e-4)
    # tokens scored from the very state they were drawn in weigh exactly 1
    exact = (batch.unmask_step[None] == batch.split[:, :, None]) | (batch.unmask_step[None] == 0)
    torch.testing.assert_close(batch.weights[exact], torch.ones(int(exact.sum())), atol=1e-5,
                               rtol=0)
    assert (~exact).any() and (batch.weights[~exact] - 1).abs().max() > 1e-2
    # the faulty variants differ from the right weights
    t1 = (want.log() + batch.sample_logprob[None] - den_t1[None]).exp().clamp_max(50.0)
    assert (t1 - batch.weights).abs().max() > 1e-2
    on_masked = (masked_num - batch.sample_logprob[None]).exp().clamp_max(50.0)
    assert (on_masked - batch.weights).abs().max() > 1e-2
    assert (batch.weights[1:] - batch.weights[:1]).abs().max() > 1e-2


@pytest.mark.parametrize("algorithm", ["d1", "diffpo"])
def test_each_inner_update_scores_with_its_own_fresh_prompt_mask(tmp_path, algorithm):
    """μ = 3 inner updates on one rollout, parameters held fixed: update ``j``'s old log-probs
    are the surrogate under prompt mask ``j`` (and split ``j``) computed independently, the loss
    at update ``j`` uses the same mask (ratio exactly 1 at every update), and the masks differ
    enough that scoring update 1 with mask 0 would change the log-probs."""
    extra = {"diffusion.joint_sampler": False} if algorithm == "diffpo" else {}
    algo = DiffusionAlgorithm(parse_config(_letters(algorithm, **extra)), tmp_path)
    algo.reward_fn = lambda text, problem: float(len(set(text)))
    _sharpen(algo)
    algo.setup(_Acc())
    rng = __import__("numpy").random.default_rng(11)
    batch = algo.next_batch(1, rng)
    mu = batch.prompt_mask.shape[0]
    assert mu == 3
    lm, mask_id = algo.policy.lm, algo.policy.mask_token_id
    for j in range(mu):
        with torch.no_grad():
            if algorithm == "d1":
                indep = d1_logps(lm, batch.prompt_ids, batch.completion, mask_id,
                                 prompt_mask=batch.prompt_mask[j])
                other = d1_logps(lm, batch.prompt_ids, batch.completion, mask_id,
                                 prompt_mask=batch.prompt_mask[(j + 1) % mu])
            else:
                indep = two_stage_logps(lm, batch.prompt_ids, batch.completion,
                                        batch.unmask_step, batch.split[j], mask_id,
                                        prompt_mask=batch.prompt_mask[j])
                other = two_stage_logps(lm, batch.prompt_ids, batch.completion,
                                        batch.unmask_step, batch.split[j], mask_id,
                                        prompt_mask=batch.prompt_mask[(j + 1) % mu])
        torch.testing.assert_close(batch.old_logps[j], indep, atol=1e-6, rtol=0)
        assert (other - indep).abs().max() > 1e-3  # the mask matters
        step_batch = batch if j == 0 else algo.next_batch(1 + j, rng)
        assert step_batch is batch
        _, metrics = algo.compute_loss(step_batch)
        assert metrics["policy/ratio_max_dev"] == pytest.approx(0.0, abs=1e-6), j
    # the masks are independent draws at rate 0.5 over the real prompt tokens
    pm = batch.prompt_mask.float()
    assert 0.3 < float(pm.mean()) < 0.7
    assert all(not torch.equal(batch.prompt_mask[a], batch.prompt_mask[b])
               for a in range(mu) for b in range(a + 1, mu))


@pytest.mark.parametrize("normalization", ["sequence", "token"])
def test_loss_normalization_weighs_sequences_or_tokens(tmp_path, normalization):
    """On-policy d1 without KL, every token of completion b has loss -A_b. Per-sequence
    normalisation (the papers') averages the rows' means, -mean_b A_b = 0 for group-mean
    advantages; per-token normalisation weighs rows by length: -Σ_b A_b |y_b| / Σ_b |y_b|."""
    algo = make(tmp_path, "d1", **{"diffusion.beta": 0.0,
                                   "diffusion.loss_normalization": normalization})
    algo.setup(_Acc())
    batch = algo.next_batch(1, __import__("numpy").random.default_rng(0))
    lengths = torch.tensor([36, 1, 5, 36, 20, 2])[: batch.completion.shape[0]]
    batch.completion_mask = (torch.arange(36)[None] < lengths[:, None]).long()
    batch.reward = torch.arange(batch.reward.numel(), dtype=torch.float32) ** 2
    batch.advantages = algo.advantages(batch.reward)
    loss, _ = algo.compute_loss(batch)
    adv = batch.advantages
    want = (-adv.mean() if normalization == "sequence"
            else -(adv * lengths).sum() / lengths.sum())
    assert float(loss.detach()) == pytest.approx(float(want), abs=1e-6)
    assert abs(float(-(adv * lengths).sum() / lengths.sum())) > 0.1  # the two differ here
