"""SOCRATES stages without LangGraph: final selection, monitor, reweighting, capability."""

from __future__ import annotations

import numpy as np
import pytest

from simopt import Problem, Variable
from simopt import socrates as stages
from simopt.schedule import Schedule, Segment
from simopt.socrates.select import merge_histories, naive_answer
from simopt.solvers.base import History


def quadratic(noise: float = 1.0, shift: float = 0.0, name: str = "quad") -> Problem:
    """f(x) = (x - 3)^2 + shift + N(0, noise^2) on [0, 10]: true mean known in closed form."""

    def one(x, rng):
        return {"objective": (x[0] - 3.0) ** 2 + shift + rng.normal(0.0, noise)}

    return Problem.from_function(name, "toy", [Variable("x", 0.0, 10.0)], one, x0=[8.0])


def half_common(noise: float) -> Problem:
    """Like :func:`quadratic`, but only half the noise variance is common to every design
    under CRN; the other half is independent across designs (as on real systems)."""

    def one(x, rng):
        own = np.random.default_rng([int(rng.integers(1 << 31)), int(round(1e6 * x[0]))])
        z = (rng.normal() + own.normal()) / np.sqrt(2.0)
        return {"objective": (x[0] - 3.0) ** 2 + noise * z}

    return Problem.from_function("half", "toy", [Variable("x", 0.0, 10.0)], one, x0=[8.0])


def true_mean(x) -> float:
    return float((np.asarray(x)[0] - 3.0) ** 2)


class Counting:
    """Counts replications simulated through it."""

    def __init__(self, problem: Problem):
        self.inner, self.reps = problem, 0
        self.minimize, self.sign = problem.minimize, problem.sign
        self.x0 = problem.x0

    def project(self, x):
        return self.inner.project(x)

    def simulate(self, x, n_reps=1, seed=0, first_rep=0):
        self.reps += int(n_reps)
        return self.inner.simulate(x, n_reps, seed=seed, first_rep=first_rep)


def noisy_history(problem: Problem, seed: int, n_designs: int = 12, reps: int = 3) -> History:
    """Designs near the optimum with a few replications each: the best sample mean among them
    is optimistic (the winner's curse)."""
    rng = np.random.default_rng(seed)
    h = History()
    for j, x in enumerate(rng.uniform(2.0, 4.0, n_designs)):
        h.add(np.array([x]), problem.simulate([x], reps, seed=1000 * seed + j).objective)
    return h


@pytest.mark.parametrize("reserve", [2, 3, 7, 20, 61])
@pytest.mark.parametrize("n_designs", [1, 2, 12])
def test_final_selection_spends_exactly_its_reserve(reserve, n_designs):
    problem = quadratic()
    counting = Counting(problem)
    hist = noisy_history(problem, 1, n_designs=n_designs)
    ans = stages.final_selection(counting, hist, reserve, seed=4)
    assert counting.reps == reserve
    assert ans.n + ans.selection_reps == reserve
    assert ans.n >= min(reserve, 2)
    assert any(np.allclose(ans.x, s.x) for s in hist.stats.values())


def test_final_interval_covers_the_truth_and_the_naive_estimate_does_not():
    """200 runs: the interval from fresh replications covers the chosen design's true mean
    about 95% of the time and its estimate is unbiased, while the sample mean that chose the
    design (the old report) is optimistic by selection."""
    problem = quadratic(noise=2.0)
    cover, err, naive_err = [], [], []
    for seed in range(200):
        hist = noisy_history(problem, seed)
        ans = stages.final_selection(problem, hist, 20, seed=seed)
        truth = true_mean(ans.x)
        cover.append(ans.ci[0] <= truth <= ans.ci[1])
        err.append(ans.estimate - truth)
        best = hist.best(minimize=True)
        naive_err.append(best.mean - true_mean(best.x))
    assert np.mean(cover) >= 0.90  # nominal 0.95; binomial sd over 200 runs is 0.015
    se = np.std(err) / np.sqrt(len(err))
    assert abs(np.mean(err)) < 3 * se + 0.05
    assert np.mean(naive_err) < -0.5  # the winner's curse the fresh estimate removes


def lucky_history(problem: Problem, seed: int, lucky_x: float) -> History:
    """The incumbent x=3.3 (true mean 0.09) with 10 honest replications, and ``lucky_x`` whose
    2 replications were the luckiest of 20 draws: its history mean looks far better than it is."""
    h = History()
    h.add(np.array([3.3]), problem.simulate([3.3], 10, seed=seed).objective)
    draws = problem.simulate([lucky_x], 20, seed=10_000 + seed).objective
    h.add(np.array([lucky_x]), np.sort(draws)[:2])
    return h


def test_incumbent_is_kept_against_a_lucky_design_and_replaced_by_a_clearly_better_one():
    """With noise sd 2 and a reserve of 24, the lucky design (true mean 0.64 against the
    incumbent's 0.09) must rarely replace the incumbent, while a design that is truly better by
    a wide margin (incumbent at x=6, true 9, against x=3, true 0) must nearly always win."""
    problem = half_common(noise=2.0)

    def kept(alpha: float) -> float:
        return float(np.mean([np.allclose(stages.final_selection(
            problem, lucky_history(problem, seed, 3.8), 24, seed=seed,
            incumbent=np.array([3.3]), switch_alpha=alpha).x, [3.3]) for seed in range(100)]))

    # choosing by the history means (the old rule) takes the lucky design in every one of
    # these runs; by the new replications alone (alpha = 1) often; the paired test rarely
    kept_test, kept_plain = kept(0.1), kept(1.0)
    assert kept_test >= 0.85
    assert kept_test > kept_plain
    won = []
    for seed in range(100):
        h = History()
        h.add(np.array([3.0]), problem.simulate([3.0], 3, seed=seed).objective)
        ans = stages.final_selection(problem, h, 24, seed=seed, incumbent=np.array([6.0]))
        won.append(np.allclose(ans.x, [3.0]))
    assert np.mean(won) >= 0.9


def test_paired_test_uses_common_random_numbers():
    """Two designs whose outcomes differ by a constant 0.1 under CRN (noise sd 5): the paired
    test sees the difference with 3 replications; an unpaired one could not."""
    a = [10.0, 3.0, -4.0]
    b = [x + 0.1 for x in a]
    assert stages.select._paired_better(a, b, minimize=True, alpha=0.1)
    assert not stages.select._paired_better(b, a, minimize=True, alpha=0.1)
    assert stages.select._paired_better(b, a, minimize=False, alpha=0.1)


def test_ocba_shares_match_the_closed_form():
    # means 0, 1, 2 with unit sds: N_1 : N_2 = (1/1)^2 : (1/2)^2, N_0 = sqrt(N_1^2 + N_2^2)
    shares = stages.ocba_shares(np.array([0.0, 1.0, 2.0]), np.ones(3), minimize=True)
    raw = np.array([np.sqrt(1.0 + 0.25**2), 1.0, 0.25])
    np.testing.assert_allclose(shares, raw / raw.sum(), rtol=1e-9)
    # maximizing mirrors the means: the best is now the last one
    shares_max = stages.ocba_shares(np.array([0.0, 1.0, 2.0]), np.ones(3), minimize=False)
    np.testing.assert_allclose(shares_max, (raw / raw.sum())[::-1], rtol=1e-9)


def test_merged_histories_equal_one_history_of_all_values():
    rng = np.random.default_rng(0)
    a, b, both = History(), History(), History()
    for x in ([1.0], [2.0], [1.0], [3.0]):
        va, vb = rng.normal(size=3), rng.normal(size=2)
        a.add(np.array(x), va)
        b.add(np.array(x), vb)
        both.add(np.array(x), np.concatenate([va, vb]))
    merged = merge_histories(a, b)
    for k, s in both.stats.items():
        m = merged.stats[k]
        assert m.n == s.n and m.mean == pytest.approx(s.mean)
        assert m.variance == pytest.approx(s.variance)


def test_naive_answer_is_marked_biased():
    h = History()
    h.add(np.array([1.0]), np.array([1.0, 2.0, 3.0]))
    ans = naive_answer(h, np.array([1.0]))
    assert not ans.fresh and ans.estimate == pytest.approx(2.0) and ans.n == 3
    assert "selection-biased" in ans.describe()


def _monitor_fires(real: Problem, replicas: list[Problem], seed: int, budget: int = 60) -> bool:
    sched = Schedule([Segment("nelder_mead", 1.0)])
    cps = stages.checkpoints_for(budget, 4)[:-1]
    mon = stages.PredictionMonitor(stages.EnsemblePredictor(replicas, [1.0] * len(replicas)),
                                   cps, real.sign, alpha=0.1)
    step = stages.execute(real, sched, budget, 0, np.array([8.0]), seed, monitor=mon)
    return step.reason is not None


def test_monitor_is_quiet_on_exact_replicas_and_fires_on_wrong_ones():
    real = quadratic(noise=2.0)
    exact = [quadratic(noise=2.0, name="replica")]
    alarms = [_monitor_fires(real, exact, s) for s in range(40)]
    assert np.mean(alarms) <= 0.2  # stated family rate 0.1; 40 runs
    # replicas that promise a far better objective than the system delivers
    optimistic = [quadratic(noise=2.0, shift=-6.0, name="optimistic")]
    fired = [_monitor_fires(real, optimistic, s) for s in range(10)]
    assert np.mean(fired) >= 0.8


def test_monitor_ignores_over_performance():
    """Doing better than predicted is no reason to re-plan (one-sided)."""
    real = quadratic(noise=2.0)
    pessimistic = [quadratic(noise=2.0, shift=+6.0, name="pessimistic")]
    assert not any(_monitor_fires(real, pessimistic, s) for s in range(10))


def test_false_alarm_rate_on_replicas_is_measured_low_for_agreeing_replicas():
    reps = [quadratic(noise=2.0, name="a"), quadratic(noise=2.0, name="b")]
    out = stages.false_alarm_rate(reps, [0.5, 0.5], Schedule([Segment("nelder_mead", 1.0)]),
                                  60, np.array([8.0]), 3, 0.1, runs_per_replica=10)
    assert out["runs"] == 20 and out["rate"] <= 0.25


def test_reweighting_favours_the_replica_that_predicts_the_real_system():
    real = quadratic()
    hist = History()
    for x in (1.0, 3.0, 5.0, 7.0):
        hist.add(np.array([x]), real.simulate([x], 10, seed=3).objective)
    good, bad = quadratic(name="good"), quadratic(shift=5.0, name="bad")
    w = stages.reweight([bad, good], hist, n_postreps=20)
    assert w[1] > 0.9 and sum(w) == pytest.approx(1.0)


def test_capability_excludes_a_pure_integer_solver_on_continuous_variables():
    cont = quadratic()
    integer = Problem.from_function(
        "int", "toy", [Variable("n", 0, 10, integer=True)],
        lambda x, rng: {"objective": float(x[0])}, x0=[5],
    )
    assert not stages.capable("integer_local_search", cont)  # range 10: no room for unit steps
    wide = Problem.from_function("wide", "toy", [Variable("s", 0.0, 5000.0)],
                                 lambda x, rng: {"objective": float(x[0])}, x0=[100.0])
    assert stages.capable("integer_local_search", wide)  # (s, S)-like levels: a fine lattice
    assert stages.capable("integer_local_search", integer)
    assert stages.capable("nelder_mead", cont)
    assert "integer_local_search" not in stages.capable_solvers(
        ["nelder_mead", "integer_local_search"], cont)


def test_data_plan_keeps_three_designs_on_small_budgets():
    assert stages.data_plan(30, 5) == (6, 5)
    assert stages.data_plan(8, 5) == (4, 2)
    n, r = stages.data_plan(4, 5)
    assert n >= 3 and r >= 2


def test_ties_between_schedules_put_random_search_last():
    rs = Schedule([Segment("random_search", 1.0)]).to_json()
    nm = Schedule([Segment("nelder_mead", 1.0)]).to_json()
    bo = Schedule([Segment("gp_bo", 1.0)]).to_json()
    assert stages.compose.best([[rs, 0.5], [nm, 0.5], [bo, 0.5]]) == nm
    assert stages.compose.best([[rs, 0.4], [nm, 0.5]]) == rs  # a better score still wins


def test_robust_score_charges_the_spread():
    class S:
        mean = [1.0, 0.5, 0.2]
        q90 = [1.0, 0.9, 0.8]

    grid = np.array([0.0, 0.5, 1.0])
    base = stages.compose.base_score(np.array(S.mean), grid, "terminal")
    assert stages.robust_score(S, grid, "terminal", 0.0) == pytest.approx(base)
    assert stages.robust_score(S, grid, "terminal", 0.5) == pytest.approx(0.2 + 0.5 * 0.6)

    class Overshoots:  # improves on average, worse than the start on one replica
        mean = [1.0, 0.7, 0.6]
        q90 = [1.0, 1.6, 1.8]

    class Still:  # never moves: gap 1 everywhere, no spread
        mean = [1.0, 1.0, 1.0]
        q90 = [1.0, 1.0, 1.0]

    # the final selection keeps the start among its candidates: beyond gap 1 is no risk
    assert stages.robust_score(Overshoots, grid, "mixed", 0.5) < stages.robust_score(
        Still, grid, "mixed", 0.5)


def test_a_lattice_method_races_on_wide_unbounded_continuous_levels():
    # SSCONT-1's (s, S - s): continuous, unbounded above, x0 = (600, 600); the search box
    # spans thousands of unit steps, where integer local search was the best single solver
    levels = Problem.from_function(
        "levels", "toy", [Variable("s", 0.0, np.inf), Variable("q", 0.0, np.inf)],
        lambda x, rng: {"objective": float((x[0] - 620) ** 2 + (x[1] - 100) ** 2)},
        x0=[600.0, 600.0],
    )
    assert stages.capable("integer_local_search", levels)
    tiny = Problem.from_function(
        "tiny", "toy", [Variable("a", 0.0, np.inf)],
        lambda x, rng: {"objective": float(x[0])}, x0=[0.5],
    )
    assert not stages.capable("integer_local_search", tiny)  # range 0.5 +- 1: too narrow
    durations = Problem.from_function(  # SAN-1-like: starts at 8, optimum near 1.5
        "durations", "toy", [Variable("t", 0.01, np.inf)],
        lambda x, rng: {"objective": float(x[0] + 1 / x[0])}, x0=[8.0],
    )
    assert not stages.capable("integer_local_search", durations)  # the tenfold box spans 88
    # and the race itself accepts what the capability check lets in
    from simopt.portfolio import evaluate_portfolio

    summary = evaluate_portfolio([levels], [1.0], ["integer_local_search"], 40, macroreps=1,
                                 n_postreps=5)
    assert "integer_local_search" in summary.solvers


def test_data_designs_stay_near_x0_on_unbounded_sides_and_fill_finite_bounds():
    half_open = Problem.from_function(
        "rate", "toy", [Variable("mu", 0.0, np.inf), Variable("a", -3.0, 7.0)],
        lambda x, rng: {"objective": float(x[0] + x[1] + rng.normal())}, x0=[5.0, 1.0],
    )
    lo, hi = stages.data_box(half_open)
    assert lo.tolist() == [0.0, -3.0] and hi.tolist() == [10.0, 7.0]  # [0, 2 x0]; bounds kept
    data = stages.collect(half_open, 40, 5, seed=3)
    assert data.designs.shape == (8, 2)
    assert np.all(data.designs[:, 0] <= 10.0) and np.all(data.designs[:, 0] >= 0.0)
    assert data.designs[:, 1].max() - data.designs[:, 1].min() > 5.0  # spread over [-3, 7]
    wide = stages.collect(half_open, 40, 5, seed=3, box_width=10.0)
    assert wide.designs[:, 0].max() > 10.0  # the tenfold box reaches much further


def test_the_paired_test_with_equal_weights_is_scipys_paired_t_test():
    from scipy import stats as sps

    rng = np.random.default_rng(4)
    cand, default = rng.normal(0.3, 0.2, 6), rng.normal(0.5, 0.2, 6)
    mean, p = stages.compose.paired_improvement(cand, default, [1.0] * 6)
    ref = sps.ttest_rel(cand, default, alternative="less")
    assert mean == pytest.approx(np.mean(cand - default))
    assert p == pytest.approx(ref.pvalue, rel=1e-10)
    # the weights' scale does not matter
    assert stages.compose.paired_improvement(cand, default, [7.0] * 6)[1] == pytest.approx(p)


def _entry(name, score, runs):
    return [Schedule([Segment(name, 1.0)]).to_json(), score, list(runs)]


def test_the_default_stays_unless_a_candidate_beats_it_with_confidence():
    nm = Schedule([Segment("nelder_mead", 1.0)]).to_json()
    w = [0.5, 0.3, 0.2]  # three replicas, two macro-replications each
    # better on average, but only through one lucky replica: not significant
    lucky = _entry("spsa", 0.20, [0.0, 0.05, 0.60, 0.55, 0.62, 0.58])
    default = _entry("nelder_mead", 0.40, [0.45, 0.40, 0.42, 0.38, 0.40, 0.41])
    chosen, why = stages.compose.choose([default, lucky], nm, w, 2, alpha=0.1)
    assert chosen == nm and why["p_value"] > 0.1 and why["candidate"] == "spsa 100%"
    # better on every run: it replaces the default
    steady = _entry("cmaes", 0.30, [0.30, 0.28, 0.31, 0.29, 0.30, 0.27])
    chosen, why = stages.compose.choose([default, steady], nm, w, 2, alpha=0.1)
    assert chosen == steady[0] and why["p_value"] < 0.01
    # no default (the ablation): the best score wins outright
    assert stages.compose.choose([default, lucky], None, w, 2, alpha=0.1)[0] == lucky[0]
    # a default that was not raced cannot be kept
    assert stages.compose.choose([lucky, steady], nm, w, 2, alpha=0.1)[0] == lucky[0]


def test_data_on_a_constrained_system_behind_the_journal_is_feasible(tmp_path):
    from simopt.journal import JournaledProblem

    shelf = Problem.from_function(
        "shelf", "toy", [Variable("a", 0, 40, integer=True), Variable("b", 0, 40, integer=True)],
        lambda x, rng: {"objective": float((x[0] - 20) ** 2 + (x[1] - 20) ** 2 + rng.normal())},
        x0=[5, 5],
    )
    shelf.set_constraints([[1.0, 2.0]], [50.0])  # a + 2 b <= 50
    real = JournaledProblem(shelf, tmp_path / "journal.jsonl")
    data = stages.collect(real, 60, 5, seed=0)  # raised "infeasible" when the journal hid A, b
    assert len(data.designs) == 12
    assert np.all(data.designs @ np.array([1.0, 2.0]) <= 50.0 + 1e-9)


def test_hall_interval_covers_skewed_costs_better_than_student_t():
    """Exponential costs (skewness 2), 9 replications, 4000 samples: Student-t's symmetric
    interval undercovers (about 0.90); Hall's skewness correction is second-order accurate
    (about 0.93). Both are computed on the same samples, so the gap is not sampling luck."""
    from simopt.socrates.select import skew_t_interval, t_interval

    rng = np.random.default_rng(11)
    hall, student = [], []
    for _ in range(4000):
        x = rng.exponential(1.0, 9)
        _, lo, hi = skew_t_interval(x, 0.95)
        hall.append(lo <= 1.0 <= hi)
        _, lo, hi = t_interval(x, 0.95)
        student.append(lo <= 1.0 <= hi)
    assert np.mean(student) < 0.915  # the shortfall the correction removes
    assert np.mean(hall) > np.mean(student) + 0.015
    assert 0.915 < np.mean(hall) < 0.965
    # left-skewed: the correction moves the interval the other way
    y = -rng.exponential(1.0, 9)
    m, lo, hi = skew_t_interval(y, 0.95)
    assert (m - lo) > (hi - m)


def test_hall_interval_is_student_t_on_symmetric_data_and_stays_finite_on_capped_data():
    from simopt.socrates.select import skew_t_interval, t_interval

    sym = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])  # sample skewness exactly 0
    assert skew_t_interval(sym) == pytest.approx(t_interval(sym))
    # a capped profit (newsvendor: most replications sell out at the same value), where a
    # bootstrap-t interval explodes: finite, around the mean, stretched toward the long tail
    # and not past the cap
    capped = np.array([0.75] * 6 + [0.1, -0.6, 0.4])
    m, lo, hi = skew_t_interval(capped)
    _, tlo, thi = t_interval(capped)
    assert np.isfinite([lo, hi]).all() and lo < tlo < m < hi < thi
    assert hi <= 0.75 and (hi - lo) < 3.0 * (thi - tlo)
    assert skew_t_interval(np.full(9, 3.0)) == (3.0, 3.0, 3.0)
    assert skew_t_interval(sym[:2]) == t_interval(sym[:2])


def test_an_interval_off_centre_is_written_as_its_ends():
    from simopt.socrates.select import describe_interval

    assert describe_interval(1.0, (0.5, 1.5), 9) == "1 ± 0.5 (95% CI, 9 fresh replications)"
    assert describe_interval(0.5, (-0.9, 0.75), 9) == \
        "0.5, 95% CI [-0.9, 0.75] (9 fresh replications)"


def test_subtracting_a_history_undoes_merging_it():
    rng = np.random.default_rng(1)
    part, rest = History(), History()
    for x in ([1.0], [2.0], [4.0]):
        part.add(np.array(x), rng.normal(size=4))
    for x in ([1.0], [5.0]):
        rest.add(np.array(x), rng.normal(3.0, 2.0, size=6))
    back = stages.subtract_history(merge_histories(part, rest), part)
    assert set(back.stats) == set(rest.stats)  # designs only the part had are gone
    for k, s in rest.stats.items():
        b = back.stats[k]
        assert b.n == s.n and b.mean == pytest.approx(s.mean)
        assert b.variance == pytest.approx(s.variance)


def test_only_history_reusing_schedules_are_warm_started():
    assert Schedule([Segment("gp_bo", 0.5), Segment("random_search", 0.5)]).uses_history
    assert not Schedule([Segment("gp_bo", 0.5), Segment("nelder_mead", 0.5)]).uses_history
    p = quadratic(noise=0.5)
    # the data knows a design far better than the start: a warm-started random search keeps it
    # as its incumbent without paying for it, a cold one cannot know it
    warm = History()
    warm.add(np.array([3.0]), np.array([0.1, -0.1, 0.0, 0.05, -0.05]))
    rs = Schedule([Segment("random_search", 1.0, {"reps": 5})])
    hot = stages.execute(p, rs, 10, 0, np.array([8.0]), seed=3, warm=warm)
    assert hot.incumbent[0] == pytest.approx(3.0)
    assert hot.used == 10
    # the returned history is the schedule's own: its replications are exactly what it paid
    assert sum(s.n for s in hot.history.stats.values()) == 10
    cold = stages.execute(p, rs, 10, 0, np.array([8.0]), seed=3)
    assert cold.incumbent[0] != pytest.approx(3.0)
    # a local solver ignores the data: the same run as without it
    nm = Schedule([Segment("nelder_mead", 1.0)])
    a = stages.execute(p, nm, 60, 0, np.array([8.0]), seed=3, warm=warm)
    b = stages.execute(p, nm, 60, 0, np.array([8.0]), seed=3)
    np.testing.assert_array_equal(a.incumbent, b.incumbent)
    assert a.history.to_json() == b.history.to_json()


def test_replica_data_histories_repeat_the_data_designs_on_each_replica():
    real = quadratic(noise=1.0)
    data = stages.collect(real, 30, 5, seed=0)
    shifted = quadratic(noise=1.0, shift=10.0, name="shifted")
    hists = stages.replica_data_histories([real, shifted], data, seed=0)
    counts = {tuple(np.round(x, 12)): int(np.sum(data.design_index == j))
              for j, x in enumerate(data.designs)}
    for h in hists:
        assert {tuple(np.round(s.x, 12)): s.n for s in h.stats.values()} == counts
    # each replica's own values: the shifted one is about 10 higher at every design
    diffs = [hists[1].get(s.x).mean - s.mean for s in hists[0].stats.values()]
    assert np.mean(diffs) == pytest.approx(10.0, abs=1.5)


def test_a_candidate_worse_on_one_replica_does_not_replace_the_default():
    """The pooled paired test passes (two replicas much better, one a little worse), but the
    replicas disagree: the default stays under the unanimity rule and is replaced without it."""
    from scipy import stats as sps

    nm = Schedule([Segment("nelder_mead", 1.0)]).to_json()
    w = [1 / 3, 1 / 3, 1 / 3]
    default = _entry("nelder_mead", 0.41, [0.40, 0.41, 0.40, 0.42, 0.40, 0.41])
    split = _entry("cmaes", 0.22, [0.10, 0.11, 0.10, 0.12, 0.43, 0.44])
    p_ref = sps.ttest_rel(split[2], default[2], alternative="less").pvalue
    assert p_ref < 0.05  # the pooled test alone would switch
    chosen, why = stages.compose.choose([default, split], nm, w, 2, alpha=0.1)
    assert chosen == nm and "every replica" in why["rule"]
    assert why["replica_differences"] == pytest.approx([-0.30, -0.30, 0.03])
    assert why["p_value"] == pytest.approx(p_ref)
    chosen, _ = stages.compose.choose([default, split], nm, w, 2, alpha=0.1, unanimous=False)
    assert chosen == split[0]
    # a replica without weight has no say
    chosen, _ = stages.compose.choose([default, split], nm, [0.5, 0.5, 0.0], 2, alpha=0.1)
    assert chosen == split[0]


def test_picking_the_best_of_many_equal_candidates_rarely_switches():
    """Ten candidates exactly as good as the default: the best-looking one passes an
    uncorrected 10% test far more often than one time in ten; the Bonferroni level keeps the
    switching rate at most about alpha (tolerance: 3 binomial standard errors)."""
    nm = Schedule([Segment("nelder_mead", 1.0)]).to_json()
    rng = np.random.default_rng(0)
    w = [1 / 3, 1 / 3, 1 / 3]
    sims, switched, naive = 400, 0, 0
    for _ in range(sims):
        common = rng.normal(0.4, 0.1, size=6)  # replica/seed effects shared by all schedules
        tried = [_entry("nelder_mead", 0.0, list(common + rng.normal(0, 0.05, size=6)))]
        for name in ("spsa", "cmaes", "gp_bo", "trust_region", "random_search"):
            for k in range(2):
                runs = list(common + rng.normal(0, 0.05, size=6))
                tried.append(_entry(name, float(np.mean(runs)) + 1e-6 * k, runs))
        tried[0][1] = float(np.mean(tried[0][2]))
        chosen, why = stages.compose.choose(tried, nm, w, 2, alpha=0.1)
        switched += chosen != nm
        naive += why.get("p_value", 1.0) < 0.1
    assert why.get("candidates", 0) == 10 or why["rule"].startswith("default is")
    assert switched / sims <= 0.1 + 3 * np.sqrt(0.09 / sims)
    assert naive / sims > 0.25  # what the uncorrected test would have done (0.345 here)
