"""Tiny run configs shared by the training tests."""

from __future__ import annotations


def with_overrides(cfg: dict, overrides: dict) -> dict:
    """Set dotted keys (``"data.n_train": 4``) in a nested config dict; returns it."""
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg


def tiny_lm_config(**overrides):
    """A tiny-llama arithmetic preference config: a step takes milliseconds."""
    cfg = {
        "algorithm": "dpo",
        "model": {"name": "tiny-llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2},
        "data": {"task": "arithmetic", "n_train": 32, "n_eval": 8,
                 "arithmetic": {"max_operand": 9, "operations": "+"}},
        "batch_size": 4,
        "max_steps": 3,
        "optimizer": {"lr": 1e-2},
    }
    return with_overrides(cfg, overrides)


def bandit_config(**overrides):
    """The dispersion bandit, sized to converge in about a second of compute."""
    cfg = {
        "algorithm": "mallowspo-theta",
        "model": {"name": "tabular"},
        "data": {"task": "bandit", "bandit": {"phis": [0.2, 0.5, 0.7], "pairs_per_prompt": 2000}},
        "batch_size": 256,
        "max_steps": 150,
        "max_grad_norm": None,
        "optimizer": {"lr": 0.1},
        "preference": {"beta": 1.0},
    }
    cfg.update(overrides)
    return cfg
