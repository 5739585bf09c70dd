"""Run config of the distillation family: ``opd+``, ``opd`` (stop-gradient) and ``gkd``.

Registered with :func:`training.base_config.register_config`, so ``algorithm: opd+`` in a YAML file
picks :class:`DistillRunConfig`. The common part (model = the *student*, data, optimizer, ...)
is :class:`training.base_config.RunConfig`; everything specific lives under ``distill:``::

    algorithm: opd+
    model: {name: tiny-llama, hidden_size: 32, num_layers: 1, num_heads: 2}   # the student
    data: {task: arithmetic, arithmetic: {max_operand: 20, operations: "+"}}
    distill:
      divergence: forward_kl          # any key of training.losses.opd.F_DIVERGENCES
      max_new_tokens: 4
      rollouts_per_prompt: 2
      teacher: {name: tiny-llama, hidden_size: 64, num_layers: 2, sft_steps: 600}

``data.path`` may instead name a JSONL file of prompts (``{"prompt": ..., "answer": ...}``,
``answer`` optional; see :mod:`training.trainers.distill`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from training.base_config import (
    ModelSection,
    PresetShape,
    RunConfig,
    Section,
    register_config,
)

DIVERGENCE_NAMES = Literal[
    "reverse_kl", "reverse_kl_k3", "forward_kl", "js", "jsd", "tv", "hellinger", "pearson",
    "neyman", "alpha",
]


class TeacherSection(PresetShape):
    """The frozen teacher: a preset trained here by SFT (cached), or a local HF model dir."""

    where: ClassVar[str] = "distill.teacher"

    name: str = Field(
        "tiny-llama",
        min_length=1,
        description="A preset (tiny-llama, tiny-gpt2), trained by supervised fine-tuning on the "
        "run's task and cached, or the path of a local Hugging Face causal LM used as is.",
    )
    sft_steps: int = Field(
        800, ge=0, le=10**6,
        description="Supervised steps on prompt+answer for a preset teacher (0: untrained).",
    )
    sft_lr: float = Field(3e-3, gt=0, le=10.0, description="AdamW learning rate of the SFT.")
    sft_batch_size: int = Field(64, ge=1, le=1 << 16, description="Examples per SFT step.")
    sft_examples: int = Field(
        4096, ge=1, le=10**7,
        description="Synthetic SFT examples drawn (arithmetic task; a JSONL file's answers are "
        "used as they are).",
    )
    seed: int = Field(1234, ge=0, le=2**32 - 1, description="Seed of the teacher's init/SFT.")
    cache_dir: str | None = Field(
        None,
        description="Folder of trained teachers, one sub-folder per teacher config hash; "
        "default <runs dir>/teachers.",
    )


class DistillSection(Section):
    """On-policy distillation (OPD+: Zhao et al., arXiv 2606.01039; GKD: Agarwal et al. 2024).

    ``max_new_tokens`` bounds the sampled completions (``data.max_response_length`` is not used
    by this family). The student samples ``rollouts_per_prompt`` completions per prompt at
    temperature 1; every
    sampled token is scored by student and teacher, ``u_t = q(y_t|c_t)/π(y_t|c_t)``, and the
    advantage is ``w_f(u_t) - Σ_{t'>t} γ^{t'-t} f(u_t')`` (opd+) or ``-Σ_{t'>=t} ...`` (opd).
    """

    divergence: DIVERGENCE_NAMES = Field(
        "reverse_kl",
        description="f-divergence D_f(teacher || student): reverse_kl, reverse_kl_k3, "
        "forward_kl, js, jsd (uses beta), tv, hellinger, pearson, neyman, alpha (uses alpha).",
    )
    beta: float = Field(
        0.5, gt=0, lt=1, description="jsd only: mixture M = beta*teacher + (1-beta)*student."
    )
    alpha: float = Field(0.5, description="alpha only: the alpha of the alpha-divergence.")
    gamma: float = Field(
        0.0, ge=0, le=1,
        description="Discount of future per-token costs in the advantage (0: immediate only, "
        "the paper's default; 1: full return, the exact sequence-level gradient).",
    )
    clip_log_ratio: float | None = Field(
        6.0, gt=0, le=100, description="Clip log u to +-this before f and w_f (null: no clip)."
    )
    clip_eps: float | None = Field(
        None, gt=0, le=10, description="PPO clip range of the importance ratio (null: none)."
    )
    max_new_tokens: int = Field(
        4, ge=1, le=1 << 15, description="Completion tokens sampled per rollout (EOS included)."
    )
    rollouts_per_prompt: int = Field(
        1, ge=1, le=1024,
        description="Completions per prompt; a micro-batch holds batch_size * this rollouts.",
    )
    inner_updates: int = Field(
        1, ge=1, le=1000,
        description="Optimizer steps per rollout batch: steps k*n+1..k*n+n reuse the rollouts "
        "sampled at step k*n+1, with the ratio taken against the sampling policy.",
    )
    student_sft_steps: int = Field(
        0, ge=0, le=10**6,
        description="Supervised warm start of the student on the training prompts' answers "
        "before distillation (0: distill from the untrained student).",
    )
    student_sft_lr: float = Field(
        3e-3, gt=0, le=10.0, description="Learning rate of the student's warm start."
    )
    eval_samples: int = Field(
        1, ge=0, le=64,
        description="Sampled completions per eval prompt for the eval/*_kl divergence "
        "estimates (0 skips them); accuracy always uses greedy decoding.",
    )
    teacher: TeacherSection = Field(default_factory=TeacherSection)

    def divergence_params(self) -> dict[str, float]:
        """Keyword parameters of the chosen divergence (``beta`` / ``alpha`` or none)."""
        if self.divergence == "jsd":
            return {"beta": self.beta}
        if self.divergence == "alpha":
            return {"alpha": self.alpha}
        return {}

    @model_validator(mode="after")
    def _alpha_not_degenerate(self) -> DistillSection:
        if self.divergence == "alpha" and self.alpha in (0.0, 1.0):
            raise ValueError(
                f"distill.alpha={self.alpha} is a limit of the alpha-divergence; use "
                "divergence: reverse_kl (alpha -> 0) or forward_kl (alpha -> 1)"
            )
        return self


def _student_default() -> ModelSection:
    return ModelSection(name="tiny-llama", hidden_size=32, num_layers=1, num_heads=2)


class DistillRunConfig(RunConfig):
    """Run config of the distillation family (``training.trainers.distill``).

    ``model`` is the student (default: a tiny-llama smaller than the default teacher).
    """

    algorithm: Literal["opd+", "opd", "gkd"] = Field(
        ..., description="opd+ (unbiased advantages), opd (stop-gradient) or gkd (full-vocab)."
    )
    model: ModelSection = Field(
        default_factory=_student_default,
        description="The student. Default: tiny-llama 32x1 (2 heads), smaller than the default "
        "teacher; a model section given without sizes takes ModelSection's 64x2.",
    )
    distill: DistillSection = Field(default_factory=DistillSection)

    @model_validator(mode="after")
    def _language_task(self) -> DistillRunConfig:
        if self.data.task == "bandit" or self.model.name == "tabular":
            raise ValueError(
                "distillation needs a language model and prompts: use data.task: arithmetic "
                "(or data.path: prompts.jsonl) and a model.name other than tabular"
            )
        if self.distill.teacher.name == "tabular":
            raise ValueError("distill.teacher.name: tabular is not a language model; use "
                             "tiny-llama, tiny-gpt2 or a local model directory")
        return self

    def estimator(self) -> Literal["opd+", "stopgrad"] | None:
        """Advantage estimator of :func:`training.losses.opd.opd_advantages` (None for gkd)."""
        return {"opd+": "opd+", "opd": "stopgrad"}.get(self.algorithm)  # type: ignore[return-value]


register_config(DistillRunConfig)
