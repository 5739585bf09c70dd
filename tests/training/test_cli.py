"""``socrates train`` and ``socrates runs`` through graphs.cli.main."""

from __future__ import annotations

import json

import pytest
import yaml

from graphs.cli import main
from training.runs import RunRegistry


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_train_bad_yaml_exits_2_with_one_line(runs_dir, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: dpo\nmax_steps: [1\n")
    assert main(["train", "dpo", "--config", str(bad)]) == 2
    assert "invalid YAML" in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("text", "args", "match"),
    [
        ("algorithm: dpo\npreference:\n  betta: 0.1\n", [], "'preference.betta'"),
        ("algorithm: dpo\n", ["--set", "max_steps=-1"], "'max_steps'"),
        ("algorithm: ipo\n", [], "says algorithm 'ipo'"),
    ],
)
def test_train_config_mistakes_exit_2(runs_dir, tmp_path, capsys, text, args, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["train", "dpo", "--config", str(path), *args]) == 2
    assert match in _one_error_line(capsys)
    assert RunRegistry().list() == []  # nothing was registered for a rejected config


def test_train_missing_file_and_unknown_algorithm(runs_dir, tmp_path, capsys):
    assert main(["train", "dpo", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in _one_error_line(capsys)
    assert main(["train", "dpoo"]) == 2
    assert "dpoo" in _one_error_line(capsys)


def test_train_then_runs_list_show_compare(runs_dir, tmp_path, capsys):
    cfg = tmp_path / "bandit.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "tabular"},
        "data": {"task": "bandit", "bandit": {"phis": [0.3, 0.6], "pairs_per_prompt": 40}},
        "max_steps": 3, "batch_size": 8,
    }))  # no algorithm: the command fills it in
    ids = []
    for algorithm in ("dpo", "mallowspo-phi"):
        assert main(["train", algorithm, "--config", str(cfg), "--set", "seed=1", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "finished" and out["metrics"]["step"] == 3
        ids.append(out["run_id"])
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in listed} == set(ids)
    assert main(["runs", "show", ids[1], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["record"]["algorithm"] == "mallowspo-phi" and shown["summary"]["steps"] == 3
    plot = tmp_path / "cmp.png"
    assert main(["runs", "compare", *ids, "--metric", "reward/margin", "--out", str(plot),
                 "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in compared["runs"]] == ids and plot.is_file()
    assert main(["runs", "list"]) == 0  # the rich table renders
    assert "mallowspo-phi" in capsys.readouterr().out
    assert main(["runs", "show", "nope"]) == 2
    assert "no run 'nope'" in _one_error_line(capsys)
