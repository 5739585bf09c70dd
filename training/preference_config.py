"""Run config of the preference family: DPO, IPO, SimPO, and MallowsPO on DPO or SimPO.

Registered with :func:`training.base_config.register_config`, so ``algorithm: dpo`` (or ``ipo``,
``simpo``, ``mallowspo-theta``, ``mallowspo-phi``) in a YAML file picks
:class:`PreferenceRunConfig`; everything specific lives under ``preference:``. The trainer is
:mod:`training.trainers.preference`, the losses :mod:`training.losses.preference`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from training.base_config import RunConfig, Section, register_config


class PreferenceSection(Section):
    """Preference optimization: DPO / IPO / SimPO, with MallowsPO as a plugin.

    DPO: Rafailov et al. 2023; IPO: Azar et al. 2023; SimPO: Meng et al. 2024; MallowsPO: Chen
    et al., ICLR 2025 (arXiv 2405.14953), whose dispersion ``c(x) = -s log Hn(x)`` uses the
    reference model's normalized next-token entropy ``Hn`` over response tokens.
    """

    beta: float = Field(0.1, gt=0, le=1e3, description="Scale of the implicit reward.")
    mallows: Literal["none", "theta", "phi"] | None = Field(
        None,
        description="MallowsPO link on top of the base loss; default follows the algorithm "
        "(theta for mallowspo-theta, phi for mallowspo-phi, none otherwise). Allowed on simpo.",
    )
    base: Literal["dpo", "simpo"] = Field(
        "dpo", description="Base preference model for mallowspo-*: DPO or SimPO (reference-free)."
    )
    dispersion_scale: float = Field(
        0.29, gt=0, le=100, description="s in c(x) = -s log Hn(x) and phi(x) = Hn(x)^s."
    )
    dispersion: Literal["reference_entropy", "oracle"] = Field(
        "reference_entropy",
        description="Where c(x)/phi(x) come from: the reference model's entropy (the paper), "
        "or the task's known true dispersion (bandit only; a diagnostic).",
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5,
        description="Conservative DPO (cDPO): probability that a label is flipped (dpo only).",
    )
    gamma_beta_ratio: float = Field(
        0.5, ge=0, le=100, description="SimPO target margin gamma / beta."
    )
    sft_steps: int = Field(
        0, ge=0, le=10**6,
        description="Supervised steps on prompt+chosen before preference training; the result "
        "is both the initial policy and the reference (an untrained reference is near-uniform, "
        "so its entropy says every prompt is maximally dispersed: c(x) ~ 0).",
    )
    sft_lr: float = Field(3e-3, gt=0, le=10.0, description="Learning rate of the SFT warmup.")
    reference: Literal["model", "precomputed"] = Field(
        "model",
        description="'model' keeps a frozen copy of the initial policy; 'precomputed' runs it "
        "once over the data and caches log-probs and entropies to disk, then frees it.",
    )

    def variant(self, algorithm: str) -> tuple[str, str]:
        """``(base, mallows)`` actually trained for ``algorithm``, e.g. ``("dpo", "theta")``."""
        if algorithm.startswith("mallowspo-"):
            return self.base, algorithm.removeprefix("mallowspo-")
        return algorithm, self.mallows or "none"


class PreferenceRunConfig(RunConfig):
    """Run config of the preference family (``training.trainers.preference``)."""

    algorithm: Literal["dpo", "ipo", "simpo", "mallowspo-theta", "mallowspo-phi"] = Field(
        ..., description="dpo, ipo, simpo, mallowspo-theta or mallowspo-phi."
    )
    preference: PreferenceSection = Field(default_factory=PreferenceSection)

    @model_validator(mode="after")
    def _consistent_variant(self) -> PreferenceRunConfig:
        algo, pref = self.algorithm, self.preference
        if algo.startswith("mallowspo-"):
            implied = algo.removeprefix("mallowspo-")
            if pref.mallows not in (None, implied):
                raise ValueError(
                    f"preference.mallows={pref.mallows!r} contradicts algorithm {algo}; "
                    f"drop it or set it to {implied!r}"
                )
        elif pref.mallows not in (None, "none"):
            if algo != "simpo":
                raise ValueError(
                    f"preference.mallows={pref.mallows!r} with algorithm {algo}: use algorithm "
                    f"mallowspo-{pref.mallows} (MallowsPO on DPO) or simpo (MallowsPO on SimPO)"
                )
        if algo != "simpo" and not algo.startswith("mallowspo-") and pref.base != "dpo":
            raise ValueError(f"preference.base applies to mallowspo-* only, not {algo}")
        if pref.label_smoothing and algo != "dpo":
            raise ValueError(f"preference.label_smoothing applies to dpo only, not {algo}")
        if pref.dispersion == "oracle" and self.data.task != "bandit":
            raise ValueError("preference.dispersion: oracle needs data.task: bandit (true phi)")
        if pref.sft_steps and self.data.task == "bandit":
            raise ValueError("preference.sft_steps is for language models; the bandit's "
                             "reference is given by the task: set it to 0")
        if (self.model.name == "tabular") != (self.data.task == "bandit"):
            raise ValueError("model.name: tabular goes with data.task: bandit, and only with it")
        return self


register_config(PreferenceRunConfig)
