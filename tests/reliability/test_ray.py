"""Ray executors give the local executors' results: the portfolio race and post-replications on
replicas, a schedule's score, and training runs. One local Ray instance (2 CPUs) for the lot,
started by the test (one test function, so a parallel test runner starts it once)."""

from __future__ import annotations

import json

import pytest
import ray
import yaml

import simopt
from simopt.executors import LocalExecutor, RayExecutor, get_executor, ray_address
from simopt.portfolio import evaluate_portfolio, score_schedule
from simopt.replicas.ensemble import fit_ensemble
from simopt.schedule import Schedule
from training.loop import read_metrics
from training.runs import LocalExecutor as LocalRuns
from training.runs import RayExecutor as RayRuns
from training.runs import RunRegistry
from training.runs import get_executor as get_run_executor

SOLVERS = ["random_search", "nelder_mead", "spsa"]
VOLATILE = ("perf/", "time")  # wall-clock columns differ between any two runs


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _bandit_config(path, seed):
    path.write_text(yaml.safe_dump({
        "algorithm": "mallowspo-theta", "model": {"name": "tabular"},
        "data": {"task": "bandit", "bandit": {"phis": [0.3, 0.6], "pairs_per_prompt": 50}},
        "max_steps": 4, "batch_size": 16, "seed": seed, "eval_every": 2,
    }))
    return path


def _stable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def test_ray_tasks_give_the_local_results(local_ray, tmp_path, monkeypatch):
    # SOCRATES stage 2 on real replicas: solvers x replicas x macro-replications, then the
    # post-replications, then a schedule scored against the same references
    ensemble = fit_ensemble(simopt.get_problem("CNTNEWS-1"), None, n_designs=8, reps_per_design=4,
                            k=2, seed=1)
    assert len(ensemble.replicas) == 2
    kw = dict(budget=60, macroreps=2, n_postreps=10, seed=3)
    local = evaluate_portfolio(ensemble.replicas, ensemble.weights, SOLVERS,
                               executor=LocalExecutor(1), **kw)
    on_ray = evaluate_portfolio(ensemble.replicas, ensemble.weights, SOLVERS, executor="ray", **kw)
    assert json.dumps(on_ray.to_json(), sort_keys=True) == json.dumps(local.to_json(),
                                                                      sort_keys=True)
    assert len({s.auc for s in local.solvers.values()}) > 1  # the solvers really differ
    schedule = Schedule.from_json({"segments": [{"solver": "random_search", "fraction": 0.5},
                                                {"solver": "nelder_mead", "fraction": 0.5}]})
    assert score_schedule(schedule, ensemble.replicas, ensemble.weights, local.refs,
                          executor="ray", **kw) == score_schedule(
        schedule, ensemble.replicas, ensemble.weights, local.refs, executor="local", **kw)

    # configuration: the address setting switches the default executor to Ray
    monkeypatch.delenv("SOCRATES_RAY_ADDRESS", raising=False)
    assert ray_address() is None and isinstance(get_executor(), LocalExecutor)
    assert isinstance(get_run_executor(max_workers=1), LocalRuns)
    monkeypatch.setenv("SOCRATES_RAY_ADDRESS", "auto")
    assert ray_address() == "auto" and isinstance(get_executor(), RayExecutor)

    # training runs as Ray tasks: same registry rows and metrics as local subprocesses
    monkeypatch.setenv("SOCRATES_RUNS_DIR", str(tmp_path / "runs"))
    configs = [_bandit_config(tmp_path / f"c{s}.yaml", s) for s in (0, 1)]
    registry = RunRegistry(tmp_path / "runs" / "registry.sqlite")
    by_ray = get_run_executor(registry=registry)
    assert isinstance(by_ray, RayRuns)
    ray_results = by_ray.run(configs)
    local_results = LocalRuns(max_workers=2, registry=registry).run(configs)
    assert [r.status for r in ray_results + local_results] == ["finished"] * 4
    for a, b in zip(ray_results, local_results, strict=True):
        rec_a, rec_b = registry.get(a.run_id), registry.get(b.run_id)
        assert rec_a.status == rec_b.status == "finished"
        assert rec_a.metrics == rec_b.metrics and "loss/total" in rec_a.metrics
        rows_a = read_metrics(tmp_path / "runs" / a.run_id / "metrics.jsonl")
        rows_b = read_metrics(tmp_path / "runs" / b.run_id / "metrics.jsonl")
        assert len(rows_a) == 4 and _stable(rows_a) == _stable(rows_b)
    assert registry.get(ray_results[0].run_id).metrics != registry.get(
        ray_results[1].run_id).metrics  # the two seeds differ: the comparison is not vacuous
