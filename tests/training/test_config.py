"""Run configs: YAML round trip, errors that name the field, overrides, the registry."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from simopt.errors import InputError
from training.config import (
    ALGORITHM_CONFIGS,
    PreferenceRunConfig,
    RunConfig,
    Section,
    apply_overrides,
    dump_config,
    load_config,
    parse_config,
    register_config,
)


def test_yaml_round_trip(tmp_path):
    cfg = parse_config({
        "algorithm": "mallowspo-phi",
        "preference": {"beta": 0.25, "dispersion_scale": 0.5},
        "optimizer": {"betas": [0.8, 0.95]},
        "schedule": {"kind": "cosine", "warmup_steps": 3},
        "model": {"lora": {"r": 4}},
    })
    path = tmp_path / "cfg.yaml"
    dump_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert isinstance(again, PreferenceRunConfig)
    assert again.preference.variant(again.algorithm) == ("dpo", "phi")


def test_unknown_key_is_named_with_the_known_keys():
    with pytest.raises(InputError, match=r"'preference.betta'.*unknown key.*known keys.*beta"):
        parse_config({"algorithm": "dpo", "preference": {"betta": 0.1}})
    with pytest.raises(InputError, match=r"'learning_rate'.*unknown key"):
        parse_config({"algorithm": "dpo", "learning_rate": 0.1})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"preference": {"beta": -1}}, "preference.beta"),
        ({"max_steps": 0}, "max_steps"),
        ({"optimizer": {"lr": "fast"}}, "optimizer.lr"),
        ({"precision": "fp8"}, "precision"),
        ({"preference": {"dispersion_scale": 0}}, "preference.dispersion_scale"),
    ],
)
def test_out_of_range_is_named(override, field):
    with pytest.raises(InputError, match=rf"config field '{field}'.*fix this value"):
        parse_config({"algorithm": "dpo", **override})


def test_error_messages_are_one_line():
    with pytest.raises(InputError) as info:
        parse_config({"algorithm": "dpo", "batch_size": -3, "max_steps": -1})
    assert "\n" not in str(info.value)
    assert "(+1 more)" in str(info.value)


def test_algorithm_missing_or_unknown():
    with pytest.raises(InputError, match="has no 'algorithm'.*dpo"):
        parse_config({"max_steps": 3})
    with pytest.raises(InputError, match="unknown algorithm 'dpoo'"):
        parse_config({"algorithm": "dpoo"})


def test_cross_field_rules():
    with pytest.raises(InputError, match="contradicts algorithm mallowspo-theta"):
        parse_config({"algorithm": "mallowspo-theta", "preference": {"mallows": "phi"}})
    with pytest.raises(InputError, match="use algorithm mallowspo-theta"):
        parse_config({"algorithm": "dpo", "preference": {"mallows": "theta"}})
    # MallowsPO as a plugin on SimPO is allowed
    cfg = parse_config({"algorithm": "simpo", "preference": {"mallows": "theta"}})
    assert cfg.preference.variant("simpo") == ("simpo", "theta")
    with pytest.raises(InputError, match="oracle needs data.task: bandit"):
        parse_config({"algorithm": "mallowspo-phi", "preference": {"dispersion": "oracle"}})
    with pytest.raises(InputError, match="either data.path or data.task"):
        parse_config({"algorithm": "dpo", "data": {"path": "x.jsonl"}})
    with pytest.raises(InputError, match="resume: true needs output_dir"):
        parse_config({"algorithm": "dpo", "resume": True})


def test_overrides_are_yaml_typed_and_nested():
    base = {"algorithm": "dpo", "preference": {"beta": 0.1}}
    out = apply_overrides(base, ["preference.beta=0.2", "resume=true", "model.lora=null",
                                 "optimizer.betas=[0.9, 0.95]", "name=my run", "seed=7"])
    assert out["preference"]["beta"] == 0.2 and isinstance(out["preference"]["beta"], float)
    assert out["resume"] is True and out["model"]["lora"] is None
    assert out["optimizer"]["betas"] == [0.9, 0.95]
    assert out["name"] == "my run" and out["seed"] == 7
    assert base["preference"]["beta"] == 0.1  # the input is not mutated
    with pytest.raises(InputError, match="not key=value"):
        apply_overrides(base, ["preference.beta"])
    with pytest.raises(InputError, match="'algorithm' is a value, not a section"):
        apply_overrides(base, ["algorithm.x=1"])


def test_load_config_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: dpo\nmax_steps: [1\n")
    with pytest.raises(InputError, match=r"line \d+: invalid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must hold a mapping"):
        load_config(listy)
    ok = tmp_path / "ok.yaml"
    ok.write_text("algorithm: ipo\n")
    assert load_config(ok, ["preference.beta=0.3"]).preference.beta == 0.3


def test_a_new_family_is_a_few_lines(monkeypatch):
    monkeypatch.setattr("training.base_config.ALGORITHM_CONFIGS", dict(ALGORITHM_CONFIGS))
    from training import config as config_module

    class DistillSection(Section):
        divergence: Literal["reverse_kl", "forward_kl"] = Field("reverse_kl", description="f")

    class DistillRunConfig(RunConfig):
        algorithm: Literal["opd+", "opd"]
        distill: DistillSection = Field(default_factory=DistillSection)

    register_config(DistillRunConfig)
    cfg = config_module.parse_config({"algorithm": "opd+", "distill": {"divergence": "forward_kl"}})
    assert isinstance(cfg, DistillRunConfig) and cfg.distill.divergence == "forward_kl"
    with pytest.raises(InputError, match="'distill.divergence'"):
        config_module.parse_config({"algorithm": "opd", "distill": {"divergence": "tv"}})
