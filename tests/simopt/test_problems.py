"""Tests for the built-in problems and for ``Problem.from_function``.

Every simulator is checked against an independent computation: closed forms (CNTNEWS-1,
PARAMESTI-1, EXAMPLE-1), a plain event loop or a literal per-replication loop (MM1-1, SSCONT-1,
DUALSOURCING-1, AMBULANCE-1), networkx's longest path (SAN-1), and docs/PROBLEMS.md's reference
values of ``f(x0)``.

Why one file of this length: it mirrors ``simopt/problems/`` (nine problems) and
``Problem.from_function``, each checked against its own independent computation.
"""

from __future__ import annotations

import heapq
import math

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from simopt.errors import InputError, SimulationError
from simopt.problem import Problem, Variable, replication_rngs
from simopt.problems import get_problem, list_problems
from simopt.problems.ambulance import DAY, FIXED_BASES, draw_calls
from simopt.problems.cntnews import (
    BURR_C,
    BURR_K,
    burr_quantile,
    critical_fractile_optimum,
    expected_profit,
)
from simopt.problems.paramesti import expected_log_likelihood
from simopt.problems.san import ARCS, longest_path

ALL = list_problems()

# docs/PROBLEMS.md's reference f(x0), and replications enough for a ~3-standard-error check.
REFERENCE_F_X0 = {
    "CNTNEWS-1": (0.0, 50),
    "MM1-1": (2.7847, 400),
    "SSCONT-1": (622.5, 400),
    "DUALSOURCING-1": (3295.4, 200),
    "SAN-1": (53.92, 400),
    "AMBULANCE-1": (16.1, 200),
    "EXAMPLE-1": (8.0, 400),
    "PARAMESTI-1": (-9.147, 1000),
    "NEWSALLOC-1": (193.4819, 400),  # exact expectation (simopt.problems.newsalloc)
}


@pytest.fixture(scope="module")
def problems() -> dict[str, Problem]:
    return {name: get_problem(name) for name in ALL}


def test_registry_lists_the_nine_problems():
    assert set(ALL) == set(REFERENCE_F_X0)
    assert get_problem("cntnews-1").name == "CNTNEWS-1"
    with pytest.raises(InputError, match="unknown problem"):
        get_problem("NOPE-1")


# ---- the common contract ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_shapes_records_and_determinism(problems, name):
    problem = problems[name]
    obs = problem.simulate(problem.x0, 5, seed=3)
    assert obs.objective.shape == (5,)
    assert set(obs.records) == set(problem.observables)
    assert 1 <= len(problem.observables) <= 15
    for values in obs.records.values():
        assert values.shape == (5,) and np.all(np.isfinite(values))
    again = problem.simulate(problem.x0, 5, seed=3)
    np.testing.assert_array_equal(obs.objective, again.objective)
    for k in obs.records:
        np.testing.assert_array_equal(obs.records[k], again.records[k])
    other = problem.simulate(problem.x0, 5, seed=4)
    if name != "CNTNEWS-1":  # at x0 = 0 the newsvendor's profit is 0 whatever the demand
        assert not np.array_equal(obs.objective, other.objective)


@pytest.mark.parametrize("name", ALL)
def test_first_rep_continues_a_call(problems, name):
    problem = problems[name]
    x = problem.known_optimum[0] if problem.known_optimum else problem.x0
    whole = problem.simulate(x, 5, seed=11)
    head = problem.simulate(x, 2, seed=11)
    tail = problem.simulate(x, 3, seed=11, first_rep=2)
    np.testing.assert_allclose(
        np.concatenate([head.objective, tail.objective]), whole.objective, rtol=1e-12
    )
    for k in whole.records:
        np.testing.assert_allclose(
            np.concatenate([head.records[k], tail.records[k]]), whole.records[k], rtol=1e-12
        )


@pytest.mark.parametrize("name", ALL)
def test_true_skeleton_is_a_dag_over_decisions_observables_and_objective(problems, name):
    problem = problems[name]
    sk = problem.true_skeleton
    graph = nx.DiGraph(list(sk.edges))
    graph.add_nodes_from(sk.nodes)
    assert nx.is_directed_acyclic_graph(graph)
    assert set(graph.nodes) == set(sk.nodes) and len(set(sk.nodes)) == len(sk.nodes)
    assert set(sk.roles) == set(sk.nodes)
    assert set(sk.roles.values()) <= {"decision", "exogenous", "latent", "intermediate", "output"}
    decisions = {v.name for v in problem.variables}
    assert {n for n, r in sk.roles.items() if r == "decision"} == decisions
    assert [n for n, r in sk.roles.items() if r == "output"] == [problem.objective_name]
    observed = {n for n, r in sk.roles.items() if r not in ("decision", "latent", "output")}
    assert observed == set(problem.observables)
    # the objective depends on the decisions, and every decision matters to it
    for d in decisions:
        assert nx.has_path(graph, d, problem.objective_name)
    # the description names every variable, observable and the objective
    for word in [*decisions, *problem.observables, problem.objective_name]:
        assert word in problem.description, word


@pytest.mark.parametrize("name", ALL)
def test_f_x0_matches_the_reference(problems, name):
    problem = problems[name]
    reference, n_reps = REFERENCE_F_X0[name]
    obs = problem.simulate(problem.x0, n_reps, seed=2024)
    se = math.sqrt(obs.variance / n_reps)
    assert abs(obs.mean - reference) <= 3.0 * se + 1e-12  # CNTNEWS-1 at x0 = 0: exactly 0


@pytest.mark.parametrize("name", ALL)
def test_known_optimum_is_feasible_and_beats_x0(problems, name):
    problem = problems[name]
    x_star, f_star = problem.known_optimum
    np.testing.assert_array_equal(problem.check_x(x_star), problem.project(x_star))
    problem.check_x(problem.x0)
    assert math.isfinite(f_star) and problem.known_optimum_se >= 0
    f_x0 = REFERENCE_F_X0[name][0]
    assert problem.sign * f_star < problem.sign * f_x0


@pytest.mark.parametrize(
    ("name", "n_reps"),
    [("MM1-1", 500), ("SSCONT-1", 500), ("DUALSOURCING-1", 200), ("SAN-1", 2000),
     ("AMBULANCE-1", 300)],
)
def test_stored_optimum_value_reproduces(problems, name, n_reps):
    """The stored ``f*`` (a long-run estimate) agrees with a fresh, independent estimate."""
    problem = problems[name]
    x_star, f_star = problem.known_optimum
    obs = problem.simulate(x_star, n_reps, seed=31337)
    se = math.sqrt(obs.variance / n_reps + problem.known_optimum_se**2)
    assert abs(obs.mean - f_star) < 4.0 * se


@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("CNTNEWS-1", [-0.1], "order_quantity=-0.1 is outside"),
        ("MM1-1", [1.0, 2.0], "expected 1"),
        ("SSCONT-1", [600.0, -5.0], "order_up_to_gap=-5.0 is outside"),
        ("DUALSOURCING-1", [-1, 80], "expedited_level=-1.0 is outside"),
        ("SAN-1", [8.0] * 12 + [0.001], "theta_8_9=0.001 is outside"),
        ("AMBULANCE-1", [6.0, 6.0, 21.0, 6.0], "base2_x=21.0 is outside"),
        ("EXAMPLE-1", [np.nan, 0.0], "non-finite"),
        ("PARAMESTI-1", [0.05, 5.0], r"x1=0.05 is outside \[0.1, 10.0\]"),
        ("NEWSALLOC-1", [40, 40, 0, 0], r"infeasible: constraint 0 .* reads 120"),
    ],
)
def test_invalid_designs_raise_input_error(problems, name, bad, match):
    with pytest.raises(InputError, match=match):
        problems[name].simulate(bad, 2, seed=0)


def test_integer_levels_are_rounded_onto_the_lattice(problems):
    problem = problems["DUALSOURCING-1"]
    assert problem.integer_mask.all()
    on_lattice = problem.simulate([50, 80], 3, seed=5).objective
    np.testing.assert_array_equal(problem.simulate([50.3, 79.8], 3, seed=5).objective, on_lattice)


# ---- common random numbers ----------------------------------------------------------------------
def test_crn_newsvendor_paired_differences_are_exact(problems):
    problem = problems["CNTNEWS-1"]
    x1, x2 = 0.15, 0.25
    a, b = problem.simulate([x1], 400, seed=9), problem.simulate([x2], 400, seed=9)
    diff = b.objective - a.objective
    both_sold_out = (a.records["stockout"] == 1) & (b.records["stockout"] == 1)
    neither = (a.records["stockout"] == 0) & (b.records["stockout"] == 0)
    assert both_sold_out.sum() > 20 and neither.sum() > 20
    # both sell out: each extra unit earns 9 - 5; neither: each extra unit loses 5 - 1
    np.testing.assert_allclose(diff[both_sold_out], 4.0 * (x2 - x1))
    np.testing.assert_allclose(diff[neither], -4.0 * (x2 - x1))
    np.testing.assert_allclose(a.records["leftover"][neither] - b.records["leftover"][neither],
                               x1 - x2)


@pytest.mark.parametrize(
    ("name", "x_a", "x_b", "same"),
    [
        ("MM1-1", [2.0], [4.0], ["mean_interarrival_time"]),
        ("SSCONT-1", [600.0, 600.0], [300.0, 50.0], ["avg_demand"]),
        ("DUALSOURCING-1", [50, 80], [40, 120], ["avg_demand"]),
        ("PARAMESTI-1", [1.0, 1.0], [3.0, 7.0], ["y1", "y2"]),
        ("EXAMPLE-1", [2.0, 2.0], [-1.0, 0.5], ["noise"]),
    ],
)
def test_crn_exogenous_records_do_not_depend_on_the_design(problems, name, x_a, x_b, same):
    problem = problems[name]
    a, b = problem.simulate(x_a, 6, seed=21), problem.simulate(x_b, 6, seed=21)
    for k in same:
        np.testing.assert_array_equal(a.records[k], b.records[k])


def test_crn_scaled_durations_mm1_and_san(problems):
    mm1 = problems["MM1-1"]
    a, b = mm1.simulate([2.0], 4, seed=1), mm1.simulate([4.0], 4, seed=1)
    np.testing.assert_allclose(2.0 * a.records["mean_service_time"],
                               4.0 * b.records["mean_service_time"])
    san = problems["SAN-1"]
    theta_a, theta_b = np.full(13, 8.0), np.linspace(1.0, 13.0, 13)
    a, b = san.simulate(theta_a, 4, seed=1), san.simulate(theta_b, 4, seed=1)
    for k, arc in enumerate(ARCS):
        name = f"arc_{arc[0]}_{arc[1]}"
        np.testing.assert_allclose(a.records[name] / theta_a[k], b.records[name] / theta_b[k])


def test_crn_example_difference_is_deterministic(problems):
    problem = problems["EXAMPLE-1"]
    a, b = problem.simulate([2.0, 2.0], 50, seed=3), problem.simulate([1.0, 0.0], 50, seed=3)
    np.testing.assert_allclose(a.objective - b.objective, 8.0 - 1.0)


def test_crn_ambulance_swapping_the_movable_bases_changes_nothing(problems):
    problem = problems["AMBULANCE-1"]
    a = problem.simulate([14.0, 17.0, 16.0, 11.0], 20, seed=8)
    b = problem.simulate([16.0, 11.0, 14.0, 17.0], 20, seed=8)
    np.testing.assert_allclose(a.objective, b.objective)
    np.testing.assert_allclose(a.records["share_base1"], b.records["share_base2"])
    # CRN make a paired comparison of nearby designs far less noisy than an unpaired one
    c = problem.simulate([14.5, 17.0, 16.0, 11.0], 20, seed=8)
    d = problem.simulate([14.5, 17.0, 16.0, 11.0], 20, seed=99)
    assert np.var(c.objective - a.objective) < 0.2 * np.var(d.objective - a.objective)


# ---- CNTNEWS-1: closed form ---------------------------------------------------------------------
def test_newsvendor_closed_form_optimum():
    x_star, f_star = critical_fractile_optimum()
    assert x_star == pytest.approx(0.187790, abs=1e-6)
    assert f_star == pytest.approx(0.463943, abs=1e-6)
    assert 1 - (1 + x_star**BURR_C) ** (-BURR_K) == pytest.approx(0.5)
    # a numerical maximization of the exact expected profit lands on the critical fractile
    res = minimize_scalar(lambda x: -expected_profit(x), bounds=(0.0, 1.0), method="bounded",
                          options={"xatol": 1e-9})
    assert res.x == pytest.approx(x_star, abs=1e-5)
    # and a sample average of simulated profits agrees with the quadrature
    problem = get_problem("CNTNEWS-1")
    demand = problem.simulate([50.0], 4000, seed=5).records["sales"]  # never sells out: demand
    assert np.median(demand) == pytest.approx(x_star, abs=0.01)
    obs = problem.simulate([x_star], 4000, seed=5)
    assert abs(obs.mean - f_star) < 4 * math.sqrt(obs.variance / 4000)
    np.testing.assert_allclose(
        obs.objective, 9 * np.minimum(demand, x_star) + np.maximum(x_star - demand, 0) - 5 * x_star
    )


def test_burr_quantile_inverts_the_cdf():
    u = np.array([1e-9, 0.1, 0.5, 0.9, 0.999])
    d = burr_quantile(u)
    np.testing.assert_allclose(1 - (1 + d**BURR_C) ** (-BURR_K), u, rtol=1e-7)


# ---- PARAMESTI-1 --------------------------------------------------------------------------------
def test_paramesti_optimum_is_the_true_parameter():
    f_star = expected_log_likelihood(np.array([2.0, 5.0]))
    assert f_star == pytest.approx(-4.633, abs=0.01)
    for step in ([0.05, 0], [-0.05, 0], [0, 0.1], [0, -0.1]):
        assert expected_log_likelihood(np.array([2.0, 5.0]) + step) < f_star
    res = minimize(lambda x: -expected_log_likelihood(x), [1.5, 4.0], method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-9})
    np.testing.assert_allclose(res.x, [2.0, 5.0], atol=5e-3)
    problem = get_problem("PARAMESTI-1")
    np.testing.assert_allclose(problem.known_optimum[0], [2.0, 5.0])
    assert problem.known_optimum[1] == pytest.approx(f_star)


def test_paramesti_simulation_matches_the_quadrature():
    problem = get_problem("PARAMESTI-1")
    for x in ([1.0, 1.0], [3.0, 4.0]):
        obs = problem.simulate(x, 3000, seed=17)
        assert abs(obs.mean - expected_log_likelihood(np.array(x))) < 4 * math.sqrt(
            obs.variance / 3000
        )
        np.testing.assert_allclose(
            obs.objective, obs.records["loglik_y2"] + obs.records["loglik_y1_given_y2"]
        )


# ---- MM1-1: Lindley's closed form against a departure-time loop ---------------------------------
def test_mm1_against_a_departure_time_loop():
    problem = get_problem("MM1-1")
    mu, seed, n = 1.8, 6, 3
    obs = problem.simulate([mu], n, seed)
    for i, rng in enumerate(replication_rngs(seed, n)):
        gaps, work = rng.standard_exponential((2, 250))
        arrive = np.cumsum(gaps / 1.5)
        service = work / mu
        depart_prev, sojourn, busy = 0.0, [], []
        for j in range(250):
            begin = max(arrive[j], depart_prev)
            depart_prev = begin + service[j]
            sojourn.append(depart_prev - arrive[j])
            busy.append((begin, depart_prev))
        assert obs.records["mean_sojourn"][i] == pytest.approx(np.mean(sojourn[50:]), rel=1e-10)
        # utilization: overlap of every service period with [first measured arrival, last exit]
        lo, hi = arrive[50], busy[-1][1]
        in_window = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in busy)
        assert obs.records["utilization"][i] == pytest.approx(in_window / (hi - lo), rel=1e-10)
        assert obs.objective[i] == pytest.approx(np.mean(sojourn[50:]) + 0.1 * mu**2, rel=1e-10)


# ---- SAN-1: longest path against networkx -------------------------------------------------------
def test_san_longest_path_against_networkx():
    rng = np.random.default_rng(0)
    durations = rng.exponential(5.0, size=(5, len(ARCS)))
    ours = longest_path(durations)
    for r in range(5):
        g = nx.DiGraph()
        for k, (i, j) in enumerate(ARCS):
            g.add_edge(i, j, weight=durations[r, k])
        assert ours[r] == pytest.approx(nx.dag_longest_path_length(g, weight="weight"))
    obs = get_problem("SAN-1").simulate(np.full(13, 8.0), 4, seed=1)
    np.testing.assert_allclose(obs.objective, obs.records["longest_path"] + 13 / 8.0)


# ---- SSCONT-1: vectorized loop against a literal per-replication loop ---------------------------
def _sscont_literal(s: float, big_s: float, demand: np.ndarray, lead: np.ndarray) -> float:
    """SimOpt's bookkeeping: outstanding orders by future day, receipts at ``t + L + 1``."""
    horizon, warm = len(demand), 20
    start, end = np.zeros(horizon), np.zeros(horizon)
    received, outstanding, placed = np.zeros(horizon), np.zeros(horizon), np.zeros(horizon)
    start[0] = s
    for t in range(horizon):
        end[t] = start[t] - demand[t]
        position = end[t] + outstanding[t]
        placed[t] = big_s - position if position < s else 0.0
        if placed[t] > 0:
            for future in range(t + 1, t + lead[t] + 1):
                if future < horizon:
                    outstanding[future] += placed[t]
            if t + lead[t] + 1 < horizon:
                received[t + lead[t] + 1] += placed[t]
        if t < horizon - 1:
            start[t + 1] = end[t] + received[t + 1]
    d, st, e, q = demand[warm:], start[warm:], end[warm:], placed[warm:]
    short = sum(dd if ss <= 0 else max(0.0, dd - ss) for dd, ss in zip(d, st, strict=True))
    return float(np.mean(np.maximum(e, 0)) + np.mean(36.0 * (q > 0) + 2.0 * q)
                 + 4.0 * short / 100)


def test_sscont_against_a_literal_loop():
    problem = get_problem("SSCONT-1")
    x, seed, n = [400.0, 300.0], 13, 3
    obs = problem.simulate(x, n, seed)
    for i, rng in enumerate(replication_rngs(seed, n)):
        demand = rng.standard_exponential(120) * 100.0
        lead = rng.poisson(6.0, 120)
        assert obs.objective[i] == pytest.approx(_sscont_literal(400.0, 700.0, demand, lead))
    r = obs.records
    np.testing.assert_allclose(r["avg_order_cost"],
                               r["order_rate"] * (36 + 2 * r["avg_order_size"]))
    np.testing.assert_allclose(r["avg_backorder_cost"],
                               4 * (1 - r["on_time_rate"]) * r["avg_demand"])
    np.testing.assert_allclose(obs.objective, r["avg_holding_cost"] + r["avg_order_cost"]
                               + r["avg_backorder_cost"])


# ---- DUALSOURCING-1: vectorized loop against a literal list-based loop --------------------------
def test_dualsourcing_against_a_literal_loop():
    problem = get_problem("DUALSOURCING-1")
    z_e, z_r, seed, n = 45, 110, 2, 2
    obs = problem.simulate([z_e, z_r], n, seed)
    for i, rng in enumerate(replication_rngs(seed, n)):
        demand = [round(max(0.0, 30 + 10 * v)) for v in rng.standard_normal(1000)]
        pipeline, inv, total = [0, 0], 40, 0.0
        for dem in demand:
            e = max(0, z_e - inv - pipeline[0])
            r = max(0, z_r - inv - sum(pipeline) - e)
            pipeline.append(r)
            inv += e + pipeline.pop(0) - dem
            total += 110 * e + 100 * r + 5 * max(inv, 0) + 495 * max(-inv, 0)
        assert obs.objective[i] == pytest.approx(total / 1000)


# ---- AMBULANCE-1: FIFO recursion against an event-driven simulation -----------------------------
def _ambulance_events(calls: np.ndarray, bases: np.ndarray) -> float:
    """Heap of (time, kind, payload) events; a completion frees its ambulance at its base."""
    events = [(t, 1, k) for k, t in enumerate(calls[0])]
    heapq.heapify(events)
    busy = [False] * len(bases)
    queue: list[int] = []
    total, answered = 0.0, 0

    def send(amb: int, k: int, now: float) -> None:
        nonlocal total, answered
        drive = abs(bases[amb, 0] - calls[1, k]) + abs(bases[amb, 1] - calls[2, k])
        total += now - calls[0, k] + drive
        answered += 1
        busy[amb] = True
        heapq.heappush(events, (now + 2 * drive + calls[3, k], 0, amb))

    while events:
        now, kind, who = heapq.heappop(events)
        if now >= DAY:
            break
        if kind == 1:  # a call arrives
            free = [a for a in range(len(bases)) if not busy[a]]
            if free and not queue:
                dist = [abs(bases[a, 0] - calls[1, who]) + abs(bases[a, 1] - calls[2, who])
                        for a in free]
                send(free[int(np.argmin(dist))], who, now)
            else:
                queue.append(who)
        else:  # an ambulance is back
            busy[who] = False
            if queue:
                send(who, queue.pop(0), now)
    return total / answered


def test_ambulance_against_an_event_simulation():
    problem = get_problem("AMBULANCE-1")
    x, seed, n = np.array([2.0, 3.0, 10.0, 4.0]), 4, 3  # poor bases: long queues
    obs = problem.simulate(x, n, seed)
    assert obs.records["frac_calls_queued"].mean() > 0.2
    bases = np.vstack([FIXED_BASES, x.reshape(2, 2)])
    for i, rng in enumerate(replication_rngs(seed, n)):
        assert obs.objective[i] == pytest.approx(_ambulance_events(draw_calls(rng), bases))
    np.testing.assert_allclose(
        obs.objective, obs.records["mean_drive_time"] + obs.records["mean_queue_wait"]
    )


# ---- Problem.from_function ----------------------------------------------------------------------
def _user_problem(fn, **kwargs) -> Problem:
    return Problem.from_function("USER-1", "a user's system", [Variable("u", 0.0, 1.0)], fn,
                                 **kwargs)


def test_from_function_discovers_observables_from_the_first_replication():
    def one(x, rng):
        z = rng.normal()
        return {"objective": x[0] ** 2 + z, "noise": z, "square": x[0] ** 2}

    problem = _user_problem(one, x0=[0.5])
    assert problem.observables == []
    obs = problem.simulate([0.5], 4, seed=1)
    assert problem.observables == ["noise", "square"]
    np.testing.assert_allclose(obs.records["square"], 0.25)
    np.testing.assert_allclose(obs.objective, 0.25 + obs.records["noise"])
    np.testing.assert_array_equal(obs.objective, problem.simulate([0.5], 4, seed=1).objective)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda x, rng: 1 / 0, r"USER-1: simulate_one raised ZeroDivisionError.*replication 0"),
        (lambda x, rng: {"objective": math.nan}, r"USER-1: .*non-finite objective.*replication 0"),
        (lambda x, rng: {"cost": 1.0}, r"USER-1: .*no 'objective'.*replication 0"),
        (lambda x, rng: {"objective": "high"}, r"USER-1: .*'high', not a number.*replication 0"),
        (lambda x, rng: 3.0, r"USER-1: .*must return a dict.*replication 0"),
    ],
)
def test_from_function_reports_the_problem_and_replication(fn, match):
    with pytest.raises(SimulationError, match=match) as info:
        _user_problem(fn).simulate([0.5], 3, seed=0)
    assert info.value.problem == "USER-1" and info.value.replication == 0


def test_from_function_names_a_later_failing_replication():
    calls = {"n": 0}

    def flaky(x, rng):
        calls["n"] += 1
        return {"objective": float("nan") if calls["n"] == 3 else 1.0, "load": 2.0}

    with pytest.raises(SimulationError, match="replication 2") as info:
        _user_problem(flaky).simulate([0.5], 5, seed=0)
    assert info.value.replication == 2


def test_from_function_requires_every_observable_each_replication():
    calls = {"n": 0}

    def drops(x, rng):
        calls["n"] += 1
        return {"objective": 1.0, "load": 2.0} if calls["n"] == 1 else {"objective": 1.0}

    with pytest.raises(SimulationError, match=r"did not return observables \['load'\]"):
        _user_problem(drops).simulate([0.5], 2, seed=0)


# ---- NEWSALLOC-1: exact expectation and optimum ---------------------------------------------
def test_newsalloc_exact_expectation_matches_simulation(problems):
    from simopt.problems.newsalloc import expected_profit

    p = problems["NEWSALLOC-1"]
    rng = np.random.default_rng(5)
    for _ in range(4):
        x = p.project(rng.integers(0, 30, size=4))
        obs = p.simulate(x, 4000, seed=11)
        se = math.sqrt(obs.variance / 4000)
        assert abs(obs.mean - expected_profit(x)) < 4 * se


def test_newsalloc_dynamic_program_equals_brute_force_enumeration():
    from scipy.stats import nbinom

    from simopt.problems import newsalloc as na

    # independent: E profit by summing the pmf over demand, then every feasible lattice point
    d = np.arange(400)
    g = np.empty((4, na.MAX_ORDER + 1))
    for i in range(4):
        pmf = nbinom.pmf(d, na.DISPERSION, na.DISPERSION / (na.DISPERSION + na.MEAN_DEMAND[i]))
        for q in range(na.MAX_ORDER + 1):
            sales = np.minimum(d, q)
            g[i, q] = pmf @ (na.PRICE[i] * sales + na.SALVAGE[i] * (q - sales)) - na.COST[i] * q
    grids = np.meshgrid(*[np.arange(na.MAX_ORDER + 1)] * 4, indexing="ij")
    X = np.stack([a.reshape(-1) for a in grids], axis=1)
    X = X[X @ na.SPACE <= na.CAPACITY]
    vals = g[0, X[:, 0]] + g[1, X[:, 1]] + g[2, X[:, 2]] + g[3, X[:, 3]]
    x_star, f_star = na.exact_optimum()
    assert f_star == pytest.approx(float(vals.max()), abs=1e-8)
    np.testing.assert_array_equal(x_star, X[int(np.argmax(vals))])
    assert na.SPACE @ np.array(x_star) <= na.CAPACITY
    # the capacity binds: the best unconstrained orders do not fit
    assert na.SPACE @ g.argmax(axis=1) > na.CAPACITY
