"""The rollout's sampling distribution (temperature, top-k, top-p), DiFFPO's importance weights
that use it, and the letters task built for the accuracy-NFE frontier."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from simopt.errors import InputError
from training.diffusion_model import build_diffusion_model
from training.losses.diffusion import importance_weights, two_stage_logps
from training.sampling import generate, sampling_logprobs
from training.tasks import letters

VOCAB, PROMPT, GEN = 12, 5, 6


def reference_logq(logits: list[float], temperature: float, top_k: int | None,
                   top_p: float) -> list[float]:
    """The sampling distribution written out by hand, one token at a time (no tensors)."""
    scaled = [v / temperature for v in logits]
    order = sorted(range(len(scaled)), key=lambda i: -scaled[i])
    keep = set(order[:top_k] if top_k else order)
    z = sum(math.exp(scaled[i]) for i in keep)
    probs = {i: math.exp(scaled[i]) / z for i in keep}
    if top_p < 1.0:
        nucleus, mass = set(), 0.0
        for i in order:
            if i not in keep:
                continue
            if mass >= top_p:
                break
            nucleus.add(i)
            mass += probs[i]
        keep = nucleus
        z = sum(probs[i] for i in keep)
        probs = {i: probs[i] / z for i in keep}
    return [math.log(probs[i]) if i in keep else -math.inf for i in range(len(logits))]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), list(itertools.product(
    [0.3, 0.7, 1.0, 2.0], [None, 1, 3], [1.0, 0.5, 0.9])))
def test_sampling_logprobs_match_a_hand_written_distribution(temperature, top_k, top_p):
    rng = np.random.default_rng(int(10 * temperature) + 7 * (top_k or 0) + int(10 * top_p))
    logits = rng.normal(0.0, 2.0, size=(4, 8))
    got = sampling_logprobs(torch.tensor(logits), temperature, top_k, top_p)
    for row, out in zip(logits, got, strict=True):
        want = reference_logq(list(row), temperature, top_k, top_p)
        for w, g in zip(want, out.tolist(), strict=True):
            assert (math.isinf(w) and math.isinf(g)) or g == pytest.approx(w, abs=1e-5)
    assert torch.allclose(got.logsumexp(-1), torch.zeros(4), atol=1e-5)


def test_sampling_logprobs_greedy_and_errors():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0]])
    greedy = sampling_logprobs(logits, 0.0)
    assert greedy[0, 1] == 0 and torch.isneginf(greedy[0, [0, 2, 3]]).all()
    for bad in ({"temperature": -0.1}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(InputError):
            sampling_logprobs(logits, **{"temperature": 1.0, **bad})


@pytest.fixture(scope="module")
def model():
    return build_diffusion_model(vocab_size=VOCAB, seed=0, hidden_size=32, num_layers=1).eval()


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [
    (0.7, None, 1.0), (0.7, 4, 1.0), (1.3, None, 0.8)])
def test_importance_weights_are_one_where_the_surrogate_sees_the_samplers_state(
        model, temperature, top_k, top_p):
    """Decoding in two steps and splitting the two-stage likelihood at step 1 scores every token
    from exactly the state it was drawn in, so the sampler's probability and the surrogate's
    coincide and every weight is exactly 1. With the temperature-1 probability as denominator
    (the old weights) they are not."""
    prompts = torch.randint(0, VOCAB, (6, PROMPT), generator=torch.Generator().manual_seed(1))
    gen = generate(model, prompts, GEN, GEN, "low_confidence", steps=2,
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   generator=torch.Generator().manual_seed(2))
    assert set(gen.unmask_step.unique().tolist()) == {0, 1}
    no_mask = torch.zeros_like(prompts, dtype=torch.bool)

    def logq(tail):
        return sampling_logprobs(tail, temperature, top_k, top_p)

    with torch.no_grad():
        surrogate = two_stage_logps(model, prompts, gen.completion, gen.unmask_step, 1,
                                    model.mask_token_id, prompt_mask=no_mask, logprob_fn=logq)
        model_t1 = two_stage_logps(model, prompts, gen.completion, gen.unmask_step, 1,
                                   model.mask_token_id, prompt_mask=no_mask)
    torch.testing.assert_close(surrogate, gen.sample_logprob, atol=1e-5, rtol=0)
    w = importance_weights(surrogate, gen.sample_logprob, cap=2.0)
    torch.testing.assert_close(w, torch.ones_like(w), atol=1e-5, rtol=0)
    # the temperature-1 log-probs are what the sampler reports as token_logprob ...
    torch.testing.assert_close(model_t1, gen.token_logprob, atol=1e-5, rtol=0)
    # ... and using them as the denominator does not give weight 1
    old = importance_weights(surrogate, gen.token_logprob, cap=100.0)
    assert (old - 1).abs().max() > 0.05


def test_top_k_one_samples_the_greedy_path_with_probability_one(model):
    prompts = torch.randint(0, VOCAB, (3, PROMPT), generator=torch.Generator().manual_seed(3))
    greedy = generate(model, prompts, GEN, GEN, "low_confidence", steps=3)
    sampled = generate(model, prompts, GEN, GEN, "low_confidence", steps=3, temperature=0.7,
                       top_k=1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(greedy.tokens, sampled.tokens)
    assert torch.equal(sampled.sample_logprob, torch.zeros_like(sampled.sample_logprob))


def test_letters_answers_and_one_step_success_by_enumeration():
    probs = letters.generate(30, seed=0, k=4, alphabet_size=8)
    assert sorted({p.kind for p in probs}) == sorted(letters.KINDS)
    assert [sum(p.kind == k for p in probs) for k in letters.KINDS] == [10, 10, 10]
    for p in probs:
        assert len(set(p.letters)) == 4 and set(p.letters) <= set("abcdefgh")
        assert letters.reward(f" {p.answer} ", p.kind, p.letters) == 1.0
    # every k-letter string over the letters, weighted equally = drawing each position from the
    # uniform marginal: the share of valid answers is one_step_success
    for kind in letters.KINDS:
        for k in (1, 2, 3, 4):
            given = "dbca"[:k]
            strings = ["".join(s) for s in itertools.product(given, repeat=k)]
            valid = sum(letters.is_valid(s, kind, given) for s in strings) / len(strings)
            if kind == "sort":  # sort's marginals are point masses: the sorted string
                valid = float(letters.is_valid("".join(sorted(given)), kind, given))
            assert valid == pytest.approx(letters.one_step_success(kind, k))
    assert not letters.is_valid("aabb", "perm", "abcd") and letters.is_valid("aabb", "pick", "abcd")
    assert not letters.is_valid("abc", "pick", "abcd")
    with pytest.raises(InputError):
        letters.generate(3, seed=0, k=5, alphabet_size=4)
    with pytest.raises(InputError):
        letters.prompt("shuffle", "abc")
