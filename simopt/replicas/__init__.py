"""Digital replicas: skeleton-guided structural equation models and their weighted ensembles.

``fit_ensemble(problem, skeleton, ...)`` is the entry point (SOCRATES stage 1); every replica and
the ensemble are :class:`simopt.Problem` s, so solvers and metrics run on them unchanged.
"""

from simopt.replicas.data import ReplicaData, collect_data, space_filling_designs
from simopt.replicas.distributions import (
    FittedDistribution,
    fit_family,
    fit_interval_censored,
    fit_root,
)
from simopt.replicas.ensemble import (
    Candidate,
    NoSkeletonReplica,
    ReplicaEnsemble,
    ensemble_weights,
    fit_ensemble,
)
from simopt.replicas.fidelity import fidelity_report, kendall_tau, replica_optimum
from simopt.replicas.sem import Replica, latent_intervals
from simopt.replicas.skeleton import CausalSkeleton, Mechanism, SkeletonNode
from simopt.replicas.structure import NodeSpec, StructureSpec

__all__ = [
    "Candidate",
    "CausalSkeleton",
    "Mechanism",
    "SkeletonNode",
    "FittedDistribution",
    "NoSkeletonReplica",
    "NodeSpec",
    "Replica",
    "ReplicaData",
    "ReplicaEnsemble",
    "StructureSpec",
    "collect_data",
    "ensemble_weights",
    "fidelity_report",
    "fit_ensemble",
    "fit_family",
    "fit_interval_censored",
    "fit_root",
    "kendall_tau",
    "latent_intervals",
    "replica_optimum",
    "space_filling_designs",
]
