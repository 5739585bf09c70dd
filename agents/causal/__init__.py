"""Causal skeleton agent: system description (+ data) -> ``CausalSkeleton`` (SOCRATES stage 1).

The role asks an LLM for a causal DAG over the system's decisions, random inputs, intermediate
quantities and the objective, with optional mechanism hints (a formula in the safe language of
:mod:`simopt.replicas.expr`, or a distribution family); the skeleton's data types live in
:mod:`simopt.replicas.skeleton`, beside the replicas that follow it. Every answer, from an LLM
or from the offline policy, passes one deterministic validator.

Modules:
    prompt: the prompt and the repair message.
    validate: name matching and the validator.
    text: the text reader (names, formulas, dependencies, unrecorded quantities).
    lexicon: the words the reader knows (synonyms, cues), general vocabulary only.
    discovery: data evidence (design independence, exact identities, censoring, PC/FCI).
    offline: the offline policy that combines text and data.
    agent: propose_skeleton(s), repair loop, merge of an LLM answer with the data.
    metrics: SHD, precision and recall against a true skeleton.
"""

from agents.causal.agent import (
    merge_with_data,
    offline_policy,
    problem_observables,
    propose_skeleton,
    propose_skeletons,
)
from agents.causal.discovery import data_columns
from agents.causal.metrics import skeleton_metrics
from agents.causal.offline import offline_skeleton
from agents.causal.prompt import ROLE, SYSTEM_PROMPT, repair_message, skeleton_prompt
from agents.causal.text import TextEvidence, read_description
from agents.causal.validate import match_name, validate_skeleton
from agents.llm import register_offline_policy
from simopt.replicas.skeleton import CausalSkeleton, Mechanism, SkeletonNode

register_offline_policy(ROLE, offline_policy)

__all__ = [
    "ROLE", "SYSTEM_PROMPT", "CausalSkeleton", "Mechanism", "SkeletonNode", "TextEvidence",
    "data_columns", "match_name", "merge_with_data", "offline_skeleton", "problem_observables",
    "propose_skeleton", "propose_skeletons", "read_description", "repair_message",
    "skeleton_metrics", "skeleton_prompt", "validate_skeleton",
]
