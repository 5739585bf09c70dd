"""Hypothesis fuzzing of every config schema and of the command line.

Rule under test: invalid input never escapes as any exception other than the project's
InputError (pydantic's ValidationError is mapped to it at each edge), and the CLI never prints a
traceback: a mistake is one line starting with ``error:`` and exit code 2.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.planner import ExperimentPlan, PlanLimits, validate_plan
from graphs.cli import main
from graphs.settings import Settings, load_settings
from simopt import Problem, Variable
from simopt.errors import InputError
from training.config import RunConfig, apply_overrides, load_config, load_families, parse_config

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
ALGORITHMS = sorted(load_families())

scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", "0", "-1", "1e9", "nan", "../../etc", "/etc/passwd", "dpo",
                              "tabular", "bandit", "reverse_kl", "EXAMPLE-1", "gp_bo"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out.extend(_paths(v, (*prefix, k)))
    return out


def _mutate(base: dict, data) -> dict:
    """``base`` with a few values (or keys) replaced by random ones."""
    cfg = yaml.safe_load(yaml.safe_dump(base))  # deep copy
    paths = _paths(cfg)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        if data.draw(st.booleans()):
            path = (*path[:-1], data.draw(st.text(max_size=8)))  # a misspelled/unknown key
        node = cfg
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                break
            node = node[part]
        else:
            node[path[-1]] = data.draw(values)
    return cfg


@FUZZ
@given(st.sampled_from(ALGORITHMS), st.data())
def test_every_run_config_accepts_or_raises_input_error(algorithm, data):
    base = parse_config({"algorithm": algorithm}).model_dump(mode="json")
    cfg = _mutate(base, data)
    try:
        out = parse_config(cfg)
    except InputError as exc:
        assert "\n" not in str(exc).strip() and str(exc)
        return
    assert isinstance(out, RunConfig)


@FUZZ
@given(st.lists(st.text(max_size=20), max_size=4), st.sampled_from(ALGORITHMS))
def test_overrides_accept_or_raise_input_error(items, algorithm):
    try:
        parse_config(apply_overrides({"algorithm": algorithm}, items))
    except InputError:
        pass


@FUZZ
@given(st.text(max_size=200) | values.map(lambda v: yaml.safe_dump(v)))
def test_yaml_files_accept_or_raise_input_error(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except InputError:
        pass


def _socrates_problem() -> Problem:
    def simulate_one(x, rng):  # never reached: validation comes first
        raise AssertionError("simulated although the config was checked first")

    return Problem.from_function("p", "d", [Variable("x", 0.0, 1.0)], simulate_one)


class Validated(Exception):
    """Raised where run_socrates goes past its config validation."""


SOCRATES_KEYS = ["data_fraction", "reps_per_design", "n_replicas", "use_skeleton", "solvers",
                 "solver_options", "macroreps", "n_postreps", "rounds", "score",
                 "final_selection", "n_checkpoints", "false_alarm", "robustness", "composition",
                 "max_replans", "replan", "approve", "n_jobs", "n_bootstrap"]


@FUZZ
@given(st.dictionaries(st.sampled_from(SOCRATES_KEYS) | st.text(min_size=1, max_size=8),
                       values, max_size=4), values, values)
def test_socrates_config_accepts_or_raises_input_error(config, budget, seed):
    from graphs import socrates

    with mock.patch.object(socrates, "SocratesContext", side_effect=Validated):
        try:
            socrates.run_socrates(_socrates_problem(), budget, seed=seed, **config)
        except (InputError, Validated):
            pass


plan_runs = st.fixed_dictionaries(
    {"algorithm": st.sampled_from([*ALGORITHMS, "socrates", "nelder_mead", "rm -rf", ""])},
    optional={"seed": values, "config": st.dictionaries(
        st.sampled_from(["problem", "budget", "seed", "max_steps", "algorithm", "solvers",
                         "output_dir", "data", "model", "rounds", "solver_options"]),
        values, max_size=4), "label": values, "params": values},
)


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "request": values, "runs": st.lists(plan_runs, max_size=3) | values,
    "comparison": st.fixed_dictionaries({}, optional={"metric": values, "mode": values,
                                                       "baselines": values}),
    "questions": values, "errors": values}))
def test_plans_validate_or_raise_a_validation_error_never_crash(tmp_path_factory, raw):
    from pydantic import ValidationError

    try:
        plan = ExperimentPlan.model_validate(raw)
    except ValidationError:
        return  # the LLM layer turns this into a re-prompt and then the offline fallback
    checked = validate_plan(plan, PlanLimits(), runs_dir=tmp_path_factory.getbasetemp())
    assert isinstance(checked, ExperimentPlan)
    assert checked.ok or checked.errors or checked.questions or not checked.runs


@FUZZ
@given(st.dictionaries(st.sampled_from(["SOCRATES_LLM", "SOCRATES_SEED", "SOCRATES_LLM_TIMEOUT",
                                        "SOCRATES_LOG_LEVEL", "SOCRATES_RUNS_DIR"]),
                       st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                                      blacklist_characters="\x00"),
                               max_size=12), max_size=3),
       st.text(max_size=80))
def test_settings_accept_or_raise_input_error(tmp_path_factory, env, file_text):
    path = tmp_path_factory.getbasetemp() / "socrates.toml"
    path.write_text(file_text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOCRATES_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        for source in (None, path, path.with_suffix(".yaml")):
            if source is not None and source.suffix == ".yaml":
                source.write_text(file_text)
            try:
                assert isinstance(load_settings(source), Settings)
            except InputError:
                pass


# ---- the command line ------------------------------------------------------------------------

COMMANDS = [["optimize"], ["ask"], ["train", "dpo"], ["train", "mallowspo-phi"], ["runs", "list"],
            ["runs", "show"], ["runs", "compare"], ["problems", "list"], ["problems", "show"],
            ["doctor"], ["train"], ["runs"], [], ["nope"]]
TOKENS = ["--problem", "EXAMPLE-1", "CNTNEWS-1", "--problem-file", "x.py:make", "--method",
          "socrates", "solver", "--solver", "gp_bo", "nope", "--budget", "--seed", "--rounds",
          "--json", "--llm", "openai:", "offline", "--set", "max_steps=-1", "preference.beta=x",
          "output_dir=../../etc", "a.b=1", "--config", "/no/such.yaml", "--default",
          "max_steps=2", "--workers", "0", "--dry-run", "--yes", "--status", "--limit",
          "--metric", "--out", "-1", "0", "1e9", "nan", "abc", "", "--help", "--approve",
          "train DPO on the bandit for 2 steps", "compare nelder mead with random search"]


class Launched(Exception):
    """Raised where a command would start real work: its input was accepted."""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    patches = [
        mock.patch.dict(os.environ, {"SOCRATES_RUNS_DIR": str(root / "runs"),
                                     "SOCRATES_LLM": "offline"}),
        mock.patch("graphs.cli.optimize.run_optimize", side_effect=Launched),
        mock.patch("graphs.cli.optimize.run_socrates_cli", side_effect=Launched),
        mock.patch("training.train", side_effect=Launched),
        mock.patch("graphs.planner.run_planner", side_effect=Launched),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        stack.enter_context(contextlib.chdir(root))
        yield root


def _run_cli(argv: list[str]) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except Launched:
            code = None
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(COMMANDS),
       st.lists(st.sampled_from(TOKENS) | st.text(max_size=10), max_size=6))
def test_cli_never_shows_a_traceback_and_mistakes_exit_2_with_one_line(cli_env, command, rest):
    code, out, err = _run_cli([*command, *rest])
    assert "Traceback" not in out + err
    assert code in (None, 0, 2), (command, rest, code, err)
    if code == 2:
        assert err.startswith("error: ") and err.strip().count("\n") == 0, err


def test_cli_fuzz_reaches_both_outcomes(cli_env):
    """The fuzz above is not vacuous: the vocabulary yields accepted and refused commands."""
    rng = random.Random(0)
    codes = set()
    for _ in range(40):
        command = rng.choice(COMMANDS)
        rest = [rng.choice(TOKENS) for _ in range(rng.randint(0, 5))]
        codes.add(_run_cli([*command, *rest])[0])
    assert {None, 2} <= codes


def test_the_installed_console_script_exits_2_with_one_line(tmp_path):
    argv = ["train", "dpo", "--set", "output_dir=../../etc", "--set", "model.name=tabular",
            "--set", "data.task=bandit"]
    import shutil
    import subprocess
    import sys

    exe = shutil.which("socrates", path=os.path.dirname(sys.executable))
    cmd = [exe, *argv] if exe else [sys.executable, "-c", "from graphs.cli import run; run()",
                                    *argv]
    env = dict(os.environ, SOCRATES_RUNS_DIR=str(tmp_path / "runs"))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: config field 'output_dir'"), p.stderr
    assert p.stderr.strip().count("\n") == 0 and not (tmp_path / "runs").exists()
