"""Observables are known before the skeleton (issue #17, item 1): a problem built with
``Problem.from_function`` without declared observables gets the same skeleton, and SOCRATES the
same result for the same seed, whether the object was simulated before, is fresh, or is fresh and
replays its data from a run's journal."""

from __future__ import annotations

from agents.causal import propose_skeleton
from graphs.socrates import run_socrates
from simopt.replicas import collect_data
from tests.toy_problems import SMALL, capacity


def test_skeleton_does_not_depend_on_the_problem_objects_history():
    simulated = capacity()
    data = collect_data(simulated, 6, 5, seed=0)  # learns the records on this object only
    fresh = capacity()
    assert fresh.observables == [] and simulated.observables == ["shortage", "holding"]
    a = propose_skeleton(simulated, data=data)
    b = propose_skeleton(fresh, data=data)
    assert a.model_dump() == b.model_dump()
    assert {"shortage", "holding"} <= set(b.node_names)


def test_socrates_same_seed_same_result_whatever_the_history(tmp_path):
    runs = []
    first = capacity()
    runs.append(run_socrates(first, 60, seed=3, run_dir=tmp_path / "a", **SMALL))
    touched = capacity()
    touched.simulate([50.0], 2, seed=9)  # simulated before, with other designs and seeds
    runs.append(run_socrates(touched, 60, seed=3, run_dir=tmp_path / "b", **SMALL))
    # a fresh object whose data come back from the first run's journal: nothing is simulated
    # before the skeleton, yet the skeleton covers the same records
    runs.append(run_socrates(capacity(), 60, seed=3, run_dir=tmp_path / "a", **SMALL))
    skeletons = [r.state["skeleton"] for r in runs]
    assert skeletons[0] == skeletons[1] == skeletons[2]
    assert {"shortage", "holding"} <= {n["name"] for n in skeletons[0]["nodes"]}
    assert [r.best_x.tolist() for r in runs] == [runs[0].best_x.tolist()] * 3
    assert len({r.best_estimate for r in runs}) == 1
