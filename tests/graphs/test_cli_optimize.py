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


def test_optimize_runs_socrates_by_default(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    monkeypatch.setattr("graphs.socrates_state.DEFAULT_SOLVERS", ["random_search", "nelder_mead"])
    assert main(["optimize", "--problem", "EXAMPLE-1", "--budget", "60", "--rounds", "1",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "socrates" and summary["budget_used"] == 60
    lo, hi = summary["estimate_ci"]
    assert lo <= summary["estimate"] <= hi and summary["estimate_fresh"]
    assert "95% CI" in summary["estimate_text"]
    folder = tmp_path / summary["run_dir"].split("/")[-1]
    assert json.loads((folder / "status.json").read_text())["status"] == "finished"
    assert main(["optimize", "--resume", str(folder)]) == 2  # finished: nothing to resume
    assert "has finished" in capsys.readouterr().err
    assert main(["optimize", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a SOCRATES run folder" in capsys.readouterr().err


CLI_KILL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import graphs.socrates_state as st
    st.DEFAULT_SOLVERS[:] = ["random_search", "nelder_mead"]
    from graphs.cli import main
    sys.exit(main(sys.argv[1:]))
""")

KILL_PROBLEM = textwrap.dedent("""
    import os, signal
    from simopt import Problem, Variable
    CALLS = [0]

    def make():
        def sim(x, rng):
            CALLS[0] += 1
            if CALLS[0] == int(os.environ.get("KILL_AFTER", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
            return {"objective": (x[0] - 3.0) ** 2 + rng.normal(0, 1.0)}
        return Problem.from_function("killme", "We set x.", [Variable("x", -10, 10)], sim,
                                     x0=[8.0])
""")


def test_cli_resume_after_sigkill_repeats_nothing_and_ends_like_an_uninterrupted_run(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    script, prob = tmp_path / "cli.py", tmp_path / "prob.py"
    script.write_text(CLI_KILL.format(root=root))
    prob.write_text(KILL_PROBLEM)
    args = ["optimize", "--problem-file", f"{prob}:make", "--budget", "60", "--rounds", "1",
            "--seed", "3", "--json"]

    def run(runs: Path, *extra: str, kill: int = 0) -> subprocess.CompletedProcess:
        env = dict(os.environ, SOCRATES_RUNS_DIR=str(runs), KILL_AFTER=str(kill),
                   PYTHONWARNINGS="ignore")
        return subprocess.run([sys.executable, str(script), *extra], capture_output=True,
                              text=True, env=env, timeout=600)

    killed_runs, clean_runs = tmp_path / "killed", tmp_path / "clean"
    p1 = run(killed_runs, *args, kill=35)  # dies inside the schedule's execution
    assert p1.returncode == -9, p1.stderr[-2000:]
    (folder,) = list(killed_runs.iterdir())
    before = (folder / "journal.jsonl").read_text().splitlines()
    assert before
    # a new command names the folder to resume
    p_hint = run(killed_runs, *args, kill=1)  # killed at once: only its hint matters
    assert f"--resume {folder}" in p_hint.stderr
    p2 = run(killed_runs, "optimize", "--resume", str(folder), "--json")
    assert p2.returncode == 0, p2.stderr[-2000:]
    p3 = run(clean_runs, *args)
    assert p3.returncode == 0, p3.stderr[-2000:]
    (clean_folder,) = list(clean_runs.iterdir())
    resumed = [json.loads(x)["key"] for x in (folder / "journal.jsonl").read_text().splitlines()]
    clean = [json.loads(x)["key"] for x in
             (clean_folder / "journal.jsonl").read_text().splitlines()]
    assert resumed[: len(before)] == [json.loads(x)["key"] for x in before]
    assert len(set(resumed)) == len(resumed)  # nothing simulated twice
    assert resumed == clean  # nothing lost or changed
    a, b = json.loads(p2.stdout), json.loads(p3.stdout)
    assert a["best_x"] == b["best_x"] and a["estimate"] == b["estimate"]


def test_solver_options_reach_the_solver_and_its_config(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path))
    argv = ["optimize", "--problem", "EXAMPLE-1", "--solver", "random_search", "--budget", "40",
            "--solver-option", "reps=8", "--solver-option", "boundary=0", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    folder = tmp_path / summary["run_dir"].split("/")[-1]
    config = json.loads((folder / "config.json").read_text())
    assert config["options"]["reps"] == 8 and config["options"]["boundary"] == 0
    history = json.loads((folder / "history.json").read_text())
    # 8 replications per design: 40 replications buy 5 designs (10 each by default: 4)
    assert sorted(r["n"] for r in history) == [8] * 5


def test_solver_option_mistakes_are_one_error_line(capsys):
    base = ["optimize", "--problem", "EXAMPLE-1", "--solver", "gp_bo", "--budget", "20"]
    assert main([*base, "--solver-option", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert "gp_bo has no option 'nope'" in err and "trust_region" in err
    assert main([*base, "--solver-option", "reps"]) == 2
    assert "not key=value" in capsys.readouterr().err
    assert main([*base, "--solver-option", "trust_region=5"]) == 2
    assert "trust_region must be" in capsys.readouterr().err
    assert main(["optimize", "--problem", "EXAMPLE-1", "--solver-option", "reps=3"]) == 2
    assert "--method solver" in capsys.readouterr().err
