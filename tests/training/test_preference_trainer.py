"""The preference trainer: log-probs over responses only, reference modes, end-to-end runs."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.configs import bandit_config, tiny_lm_config
from training import train
from training.config import parse_config
from training.data import TokenizedPair, collate_pairs
from training.loop import make_accelerator
from training.trainers.preference import PreferenceAlgorithm, sequence_logps


def test_sequence_logps_counts_response_tokens_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    ids = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
    logps, n = sequence_logps(logits, ids, mask)
    lp = torch.log_softmax(logits.float(), -1)
    expected = [lp[0, 1, ids[0, 2]] + lp[0, 2, ids[0, 3]],
                lp[1, 0, ids[1, 1]] + lp[1, 1, ids[1, 2]] + lp[1, 2, ids[1, 3]]
                + lp[1, 3, ids[1, 4]]]
    torch.testing.assert_close(logps, torch.stack(expected))
    assert n.tolist() == [2.0, 4.0]


def _algo(tmp_path, **overrides):
    cfg = parse_config(tiny_lm_config(**overrides))
    algo = PreferenceAlgorithm(cfg, tmp_path)
    algo.setup(make_accelerator(cfg))
    return algo


def test_padding_does_not_change_log_probs(tmp_path):
    algo = _algo(tmp_path)
    short = TokenizedPair([1, 20, 21], [22, 2], [23, 2])
    long = TokenizedPair([1, 20, 21, 24, 25, 26, 27], [22, 23, 24, 2], [25, 2])
    alone = collate_pairs([short], algo.pad_id)
    padded = collate_pairs([short, long], algo.pad_id)
    with torch.no_grad():
        a = sequence_logps(algo.model(input_ids=alone["input_ids"]).logits,
                           alone["input_ids"], alone["response_mask"])[0]
        b = sequence_logps(algo.model(input_ids=padded["input_ids"],
                                      attention_mask=padded["attention_mask"]).logits,
                           padded["input_ids"], padded["response_mask"])[0]
    torch.testing.assert_close(a, b[[0, 2]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["mallowspo-theta", "ipo"])
def test_precomputed_reference_equals_the_frozen_model(tmp_path, algorithm):
    live = _algo(tmp_path / "live", algorithm=algorithm, **{"preference.sft_steps": 2})
    cached = _algo(tmp_path / "cached", algorithm=algorithm,
                   **{"preference.sft_steps": 2, "preference.reference": "precomputed"})
    assert cached.reference is None and (tmp_path / "cached" / "reference_cache.pt").is_file()
    rng = None
    batch = live.next_batch(1, rng)
    assert torch.equal(batch["input_ids"], cached.next_batch(1, rng)["input_ids"])
    _, m_live = live._losses(live.model, batch)
    _, m_cached = cached._losses(cached.model, batch)
    for key, value in m_live.items():
        assert m_cached[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    if algorithm == "mallowspo-theta":
        # an SFT'd reference is no longer uniform: a real dispersion signal
        assert 0.0 < m_live["dispersion/c_min"] <= m_live["dispersion/c_max"]
    # a second setup reuses the cache file (same key) instead of recomputing
    again = _algo(tmp_path / "cached", algorithm=algorithm,
                  **{"preference.sft_steps": 2, "preference.reference": "precomputed"})
    assert torch.equal(again.cache["train"]["chosen_logps"], cached.cache["train"]["chosen_logps"])


def test_simpo_is_reference_free_and_mallows_on_simpo_uses_the_reference(tmp_path):
    assert _algo(tmp_path / "a", algorithm="simpo").reference is None
    plugin = _algo(tmp_path / "b", algorithm="simpo", **{"preference.mallows": "phi"})
    assert plugin.reference is not None and plugin.loss_name == "mallowspo-phi"
    _, metrics = plugin._losses(plugin.model, plugin.next_batch(1, None))
    assert "dispersion/phi" in metrics


def test_oracle_dispersion_uses_the_true_phi(tmp_path):
    cfg = parse_config(bandit_config(algorithm="mallowspo-theta", max_steps=1,
                                     preference={"beta": 1.0, "dispersion": "oracle"}))
    algo = PreferenceAlgorithm(cfg, tmp_path)
    algo.setup(make_accelerator(cfg))
    batch = algo.next_batch(1, None)
    values = algo._reference_values(batch, batch["input_ids"], batch["attention_mask"],
                                    batch["response_mask"])
    torch.testing.assert_close(values["c"], -torch.log(batch["phi"]).float())


def test_arithmetic_end_to_end_dpo_and_mallowspo(runs_dir):
    """Tiny language run: prefer the correct sum over a near miss; reward accuracy rises."""
    results = {}
    for algorithm in ("dpo", "mallowspo-theta"):
        cfg = tiny_lm_config(
            algorithm=algorithm, max_steps=40, batch_size=16,
            **{"model.hidden_size": 64, "model.num_layers": 2, "model.num_heads": 4,
               "data.n_train": 256, "data.n_eval": 64, "data.arithmetic.max_operand": 5,
               "optimizer.lr": 3e-3, "preference.beta": 0.5, "preference.sft_steps": 60},
        )
        results[algorithm] = train(cfg).metrics
    for algorithm, m in results.items():
        assert m["eval/reward_accuracy"] > 0.75, (algorithm, m["eval/reward_accuracy"])
        assert m["eval/reward_margin"] > 0.5, algorithm
    assert results["mallowspo-theta"]["dispersion/c_min"] > 0.05  # SFT'd reference disperses


def test_jsonl_data_runs(runs_dir, tmp_path):
    path = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i + 2)} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = tiny_lm_config(algorithm="simpo", max_steps=2, **{"data.task": None,
                                                           "data.path": str(path),
                                                           "data.eval_fraction": 0.34})
    result = train(cfg)
    assert result.status == "finished" and "eval/reward_accuracy" in result.metrics


def test_label_smoothing_reaches_the_dpo_loss(tmp_path):
    plain = _algo(tmp_path / "a")
    smooth = _algo(tmp_path / "b", **{"preference.label_smoothing": 0.2})
    batch = plain.next_batch(1, None)
    noise = 0.5 * torch.randn(plain.model.lm_head.weight.shape,
                              generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # move both (identical) policies away from their references
        plain.model.lm_head.weight.add_(noise)
        smooth.model.lm_head.weight.add_(noise)
    losses_plain, _ = plain._losses(plain.model, batch)
    losses_smooth, _ = smooth._losses(smooth.model, batch)
    # DPO: l = softplus(-delta), so -delta = log(expm1(l)); cDPO with eps:
    # (1 - eps) softplus(-delta) + eps softplus(delta) = l + eps * delta
    delta = -torch.log(torch.expm1(losses_plain.double()))
    assert delta.abs().min() > 1e-3
    torch.testing.assert_close(losses_smooth.double(), losses_plain.double() + 0.2 * delta,
                               rtol=1e-4, atol=1e-5)
