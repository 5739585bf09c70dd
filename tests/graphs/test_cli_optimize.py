"""`socrates problems` and `socrates optimize` (one solver and SOCRATES) end to end."""

from __future__ import annotations

import json
import textwrap

from graphs.cli import main


def test_problems_list_and_show(capsys):
    assert main(["problems", "list"]) == 0
    out = capsys.readouterr().out
    assert "CNTNEWS-1" in out and "SAN-1" in out
    assert main(["problems", "show", "cntnews-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "order_quantity" in json.dumps(shown)
    assert main(["problems", "show", "NOPE-9"]) == 2
    assert "unknown problem" in capsys.readouterr().err


def test_optimize_one_solver_writes_a_run_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    argv = ["optimize", "--problem", "EXAMPLE-1", "--solver", "nelder_mead", "--budget", "60",
            "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["budget_used"] <= 60 and summary["terminal_gap"] < 1.0
    folder = tmp_path / summary["run_dir"].split("/")[-1]
    for f in ("trajectory.json", "metrics.json", "progress.png", "config.json"):
        assert (folder / f).exists(), f


def test_optimize_user_mistakes(capsys):
    assert main(["optimize", "--problem", "EXAMPLE-1", "--solver", "bogus"]) == 2
    assert "unknown solver" in capsys.readouterr().err
    assert main(["optimize", "--solver", "spsa"]) == 2
    assert "exactly one of --problem" in capsys.readouterr().err
    assert main(["optimize", "--problem-file", "missing.py:f", "--method", "socrates"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_optimize_socrates_on_a_problem_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "runs"))
    src = tmp_path / "mine.py"
    src.write_text(textwrap.dedent("""
        from simopt import Problem, Variable

        def make():
            def sim(x, rng):
                d = rng.exponential(20.0)
                return {"objective": (x[0] - 3.0) ** 2 + 0.01 * d, "load": d}
            return Problem.from_function("mine", "We set x. load is random.",
                                         [Variable("x", -10, 10)], sim, x0=[8.0])
    """))
    monkeypatch.setattr(
        "graphs.socrates_state.DEFAULT_SOLVERS", ["random_search", "nelder_mead"]
    )
    argv = ["optimize", "--problem-file", f"{src}:make", "--method", "socrates", "--budget", "60",
            "--rounds", "1", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "socrates" and summary["budget_used"] <= 60
    assert abs(summary["best_x"][0] - 3.0) < 4.0
