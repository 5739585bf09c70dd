"""The trainer's DPO / MallowsPO-θ loss on a padded batch against a per-sequence hand computation.

This pins the convention ``bench/preference_throughput.py`` checks against TRL's ``DPOTrainer``
(``loss_type="sigmoid"``), without TRL: a pair's log-probability is the *sum* over its response
tokens (EOS included; BOS and prompt excluded) of ``log π(token | prefix)``, each sequence
scored on its own with no padding, chosen against rejected, ``β`` times the log-ratio margin,
batch mean of ``-log σ(·)``. A swapped chosen/rejected half, an off-by-one response mask, a
mean instead of a sum, or the policy standing in for the reference all fail here.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.training.configs import tiny_lm_config
from training.config import parse_config
from training.data import TokenizedPair, collate_pairs
from training.loop import make_accelerator
from training.trainers.preference import PreferenceAlgorithm

PAIRS = [  # different prompt and response lengths, so the batch is padded
    TokenizedPair([1, 20, 21], [22, 2], [23, 24, 25, 2]),
    TokenizedPair([1, 30, 31, 32, 33, 34], [40, 41, 42, 2], [43, 2]),
    TokenizedPair([1, 50], [51, 52, 53, 54, 55, 2], [56, 57, 2]),
]


def _scored(model: torch.nn.Module, prompt: list[int], response: list[int]):
    """Summed log-prob of ``response`` after ``prompt`` and the per-position next-token
    entropies (nats) at the positions that predict it, one unpadded sequence, token by token."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)  # (T, V)
    total, entropies = 0.0, []
    for k, token in enumerate(response):
        pos = len(prompt) - 1 + k  # the position whose logits predict response[k]
        total += float(logp[pos, token])
        entropies.append(float(-(logp[pos].exp() * logp[pos]).sum()))
    return total, entropies


@pytest.mark.parametrize("algorithm", ["dpo", "mallowspo-theta"])
def test_trainer_loss_equals_per_sequence_hand_computation(tmp_path, algorithm):
    beta, scale = 0.3, 0.29
    cfg = parse_config(tiny_lm_config(algorithm=algorithm, **{"preference.beta": beta}))
    algo = PreferenceAlgorithm(cfg, tmp_path)
    algo.setup(make_accelerator(cfg))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # move the policy away from its (frozen, copied) reference
        for p in algo.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    batch = collate_pairs(PAIRS, algo.pad_id)
    batch["split"] = "train"
    loss, metrics = algo.compute_loss(batch)

    vocab = algo.model.config.vocab_size
    expected, margins = [], []
    for pair in PAIRS:
        pw, _ = _scored(algo.model, pair.prompt_ids, pair.chosen_ids)
        pl, _ = _scored(algo.model, pair.prompt_ids, pair.rejected_ids)
        rw, hw = _scored(algo.reference, pair.prompt_ids, pair.chosen_ids)
        rl, hl = _scored(algo.reference, pair.prompt_ids, pair.rejected_ids)
        delta = beta * ((pw - rw) - (pl - rl))
        weight = 1.0
        if algorithm == "mallowspo-theta":
            hn = 0.5 * (sum(hw) / len(hw) + sum(hl) / len(hl)) / math.log(vocab)
            weight = -scale * math.log(hn)
        margins.append(delta)
        expected.append(math.log1p(math.exp(-weight * delta)))  # -log sigmoid(weight * delta)
    assert min(abs(m) for m in margins) > 1e-2  # the perturbation really separated the models
    assert float(loss.detach()) == pytest.approx(sum(expected) / len(expected), rel=1e-5, abs=1e-6)
    assert metrics["reward/margin"] == pytest.approx(sum(margins) / len(margins), rel=1e-4,
                                                     abs=1e-5)
