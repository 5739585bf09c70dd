"""SOCRATES as plain stages of the engine, each testable without LangGraph.

The graph in ``graphs/socrates.py`` calls one stage per node, in the paper's order (its run
settings are :class:`~simopt.socrates.config.SocratesConfig`):

1. :mod:`~simopt.socrates.data`: data budget, data collection, the execution's start;
2. :mod:`~simopt.socrates.replicas`: the replica ensemble, and its reweighting at a re-plan;
3. :mod:`~simopt.socrates.race`: the capable solvers raced on the replicas;
4. :mod:`~simopt.socrates.compose`: schedules scored robustly, the best single solver kept;
5. :mod:`~simopt.socrates.execute`: the schedule on the real system with the
   :mod:`~simopt.socrates.monitor` (predictions vs real observations, one-sided);
6. :mod:`~simopt.socrates.select`: the final selection and the honest answer (a confidence
   interval from replications that did not choose the design).

The LLM roles that propose skeletons and schedules live in ``agents/``; these stages only
score, run and check what they propose.
"""

from simopt.socrates.compose import best_single, robust_score, singles
from simopt.socrates.config import DEFAULT_SOLVERS, SocratesConfig
from simopt.socrates.data import (
    collect,
    data_box,
    data_history,
    data_plan,
    replica_data_histories,
    start_design,
)
from simopt.socrates.execute import ExecutionStep, execute, reserve_for
from simopt.socrates.monitor import (
    EnsemblePredictor,
    PredictionMonitor,
    checkpoints_for,
    false_alarm_rate,
)
from simopt.socrates.race import capable, capable_solvers, race
from simopt.socrates.replicas import fit, reweight
from simopt.socrates.select import (
    FinalAnswer,
    final_selection,
    ocba_shares,
    subtract_history,
    t_interval,
)

__all__ = [
    "DEFAULT_SOLVERS", "SocratesConfig",
    "EnsemblePredictor", "ExecutionStep", "FinalAnswer", "PredictionMonitor", "best_single",
    "capable", "capable_solvers", "checkpoints_for", "collect", "data_box", "data_history",
    "data_plan",
    "execute", "false_alarm_rate", "final_selection", "fit", "ocba_shares", "race",
    "replica_data_histories", "reserve_for", "reweight", "robust_score", "singles",
    "start_design", "subtract_history", "t_interval",
]
