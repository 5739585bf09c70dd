"""The common part of every run config and the registry of algorithm families.

A run config is one pydantic model: the common part here (model, data, optimizer, schedule,
batch, precision, checkpointing: :class:`RunConfig`) plus one section named after the algorithm
family, defined in the family's own module (:mod:`training.preference_config`,
:mod:`training.distill_config`, :mod:`training.diffusion_config`). A family module imports this
one and calls :func:`register_config` on its class; :mod:`training.config` imports every family
module, so the registry :data:`ALGORITHM_CONFIGS` is complete once it is imported. Nothing here
imports a family module, so there is no import cycle.

A new family is a subclass and one call::

    class DistillSection(Section):
        divergence: Literal["reverse_kl", "forward_kl"] = "reverse_kl"

    class DistillRunConfig(RunConfig):
        algorithm: Literal["opd+", "opd", "gkd"]
        distill: DistillSection = Field(default_factory=DistillSection)

    register_config(DistillRunConfig)

then one import line in :mod:`training.config`. Every section forbids unknown
keys, so a typo fails with the field named.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PRESET_MODELS = ("tiny-llama", "tiny-gpt2", "tabular")


def check_preset_shape(section: Any, where: str) -> Any:
    """``section`` unchanged, or ValueError when a preset's width is not a multiple of its heads.

    ``section`` has ``name``, ``hidden_size`` and ``num_heads`` (a model or a teacher); ``where``
    is its place in the config (``model``, ``distill.teacher``) for the message.
    """
    if section.name in PRESET_MODELS and section.hidden_size % section.num_heads:
        raise ValueError(
            f"{where}.hidden_size ({section.hidden_size}) must be a multiple of {where}.num_heads "
            f"({section.num_heads})"
        )
    return section


class Section(BaseModel):
    """Base of every config section: unknown keys are rejected, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSection(Section):
    """Low-rank adapters through ``peft`` (optional dependency; Hu et al. 2021)."""

    r: int = Field(8, ge=1, le=1024, description="Adapter rank.")
    alpha: float = Field(16.0, gt=0, le=1e4, description="Scaling numerator: delta W * alpha/r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; None lets peft pick the model's defaults."
    )


class PresetShape(Section):
    """A network named by a preset or a local directory, and the size a preset is built with.

    The policy model (``model:``) and the distillation teacher (``distill.teacher:``) are both
    this; each subclass says what its ``name`` may be. The size fields apply to presets only.
    """

    #: Where the section sits in a config, for messages (``model``, ``distill.teacher``).
    where: ClassVar[str] = "model"

    name: str = Field("tiny-llama", min_length=1, description="A preset or a local model path.")
    hidden_size: int = Field(64, ge=8, le=8192, description="Preset width (presets only).")
    num_layers: int = Field(2, ge=1, le=128, description="Preset depth (presets only).")
    num_heads: int = Field(4, ge=1, le=128, description="Preset attention heads (presets only).")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> PresetShape:
        return check_preset_shape(self, self.where)


class ModelSection(PresetShape):
    """Which policy network to train."""

    name: str = Field(
        "tiny-llama",
        min_length=1,
        description="A preset (tiny-llama, tiny-gpt2; tabular for the bandit task) or the path "
        "of a local Hugging Face model directory (loaded with local_files_only=True).",
    )
    tokenizer: str | None = Field(
        None,
        description="'char' for the built-in character tokenizer, or a local tokenizer "
        "directory. Default: 'char' for presets, the model directory's own tokenizer otherwise.",
    )
    lora: LoraSection | None = Field(None, description="Train LoRA adapters, not all weights.")


class ArithmeticSection(Section):
    """Synthetic arithmetic prompts such as ``12+7=`` with answer ``19``."""

    max_operand: int = Field(20, ge=1, le=10**6, description="Operands are drawn from 0..max.")
    operations: str = Field("+-", min_length=1, pattern=r"^[+\-*]+$",
                            description="Operators to draw from, any of '+-*'.")


class BanditSection(Section):
    """Synthetic dispersion bandit: one prompt per entry of ``phis``, Mallows preferences."""

    n_arms: int = Field(5, ge=2, le=12, description="Arms (responses) per prompt.")
    phis: list[float] = Field(
        [0.2, 0.5, 0.7],
        min_length=1,
        description="True Mallows dispersion phi in (0, 1) of each prompt (1 = uniform).",
    )
    pairs_per_prompt: int = Field(2000, ge=1, le=10**6, description="Pairs per prompt.")
    reference: Literal["first_choice", "uniform"] = Field(
        "first_choice",
        description="Reference policy: 'first_choice' is the SFT-like distribution of the "
        "top-ranked arm under the prompt's Mallows model (its entropy reflects dispersion); "
        "'uniform' is uniform over arms.",
    )

    @model_validator(mode="after")
    def _phis_open_interval(self) -> BanditSection:
        bad = [p for p in self.phis if not 0.0 < p < 1.0]
        if bad:
            raise ValueError(f"every entry of data.bandit.phis must lie in (0, 1); got {bad}")
        return self


class DataSection(Section):
    """Where the training examples come from: a synthetic task or a user file/directory."""

    task: Literal["arithmetic", "bandit"] | None = Field(
        "arithmetic", description="Synthetic task, or null when data.path is given."
    )
    path: str | None = Field(
        None, description="JSONL file (prompt/chosen/rejected) or a datasets.save_to_disk dir."
    )
    split: str = Field("train", description="Split to read from a DatasetDict directory.")
    eval_path: str | None = Field(None, description="Optional separate evaluation file/dir.")
    eval_fraction: float = Field(
        0.1, ge=0, lt=1, description="Fraction held out for evaluation when eval_path is unset."
    )
    n_train: int = Field(256, ge=1, le=10**7, description="Synthetic training examples.")
    n_eval: int = Field(64, ge=0, le=10**7, description="Synthetic evaluation examples.")
    max_prompt_length: int = Field(64, ge=1, le=1 << 17, description="Prompt tokens kept (left).")
    max_response_length: int = Field(
        64, ge=1, le=1 << 17, description="Response tokens kept (right-truncated)."
    )
    arithmetic: ArithmeticSection = Field(default_factory=ArithmeticSection)
    bandit: BanditSection = Field(default_factory=BanditSection)

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if self.path is not None and self.task is not None:
            raise ValueError("set either data.path or data.task, not both (task: null for files)")
        if self.path is None and self.task is None:
            raise ValueError("no data: set data.task (arithmetic, bandit) or data.path")
        return self


class OptimizerSection(Section):
    """AdamW (Loshchilov & Hutter 2019)."""

    lr: float = Field(1e-3, gt=0, le=10.0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1.0, description="Decoupled weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam moment decay rates.")
    eps: float = Field(1e-8, gt=0, le=1e-2, description="Adam denominator epsilon.")

    @model_validator(mode="after")
    def _betas_in_range(self) -> OptimizerSection:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optimizer.betas must lie in [0, 1); got {list(self.betas)}")
        return self


class ScheduleSection(Section):
    """Learning-rate schedule: linear warmup, then constant, cosine or linear decay to 0."""

    kind: Literal["constant", "cosine", "linear"] = Field("constant", description="Decay shape.")
    warmup_steps: int = Field(0, ge=0, le=10**7, description="Linear warmup steps from 0.")


class RunConfig(Section):
    """Common part of every run config. Subclasses add ``algorithm`` and their own section."""

    algorithm: str = Field(..., description="Canonical algorithm name, e.g. dpo, mallowspo-phi.")
    name: str | None = Field(None, description="Optional human-readable run name.")
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    batch_size: int = Field(8, ge=1, le=1 << 16, description="Examples per micro-batch.")
    grad_accum: int = Field(1, ge=1, le=1 << 12, description="Micro-batches per optimizer step.")
    max_steps: int = Field(100, ge=1, le=10**8, description="Optimizer steps to run.")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this; null disables clipping."
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 uses autocast.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for init, data order, dropout.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA if any.")
    log_every: int = Field(1, ge=1, le=10**6, description="Write a metrics row every N steps.")
    eval_every: int = Field(0, ge=0, le=10**8, description="Evaluate every N steps (0: at end).")
    save_every: int = Field(0, ge=0, le=10**8, description="Checkpoint every N steps (0: at end).")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Newest checkpoints kept.")
    output_dir: str | None = Field(
        None, description="Run folder; default <runs dir>/<run id> (runs dir: ./runs or "
        "$SOCRATES_RUNS_DIR)."
    )
    resume: bool = Field(
        False, description="Continue from the newest checkpoint in output_dir (exact resume)."
    )

    @model_validator(mode="after")
    def _resume_needs_dir(self) -> RunConfig:
        if self.resume and self.output_dir is None:
            raise ValueError("resume: true needs output_dir set to the run folder to resume")
        return self


# ---------------------------------------------------------------------------------------------
# The registry: canonical algorithm name -> its run-config class

#: The canonical training algorithm names (docs/ARCHITECTURE.md), in the order people list them.
#: A family registers the ones it implements (and may register more, e.g. ``mdm-sft``); a name
#: here without a registered config is known but not available in this version.
CANONICAL_ALGORITHMS = ("opd+", "opd", "gkd", "dpo", "ipo", "simpo", "mallowspo-theta",
                        "mallowspo-phi", "d1", "diffpo")

#: Filled by :func:`register_config` as each family module is imported.
ALGORITHM_CONFIGS: dict[str, type[RunConfig]] = {}


def register_config(cls: type[RunConfig]) -> type[RunConfig]:
    """Add a config class for every name in its ``algorithm: Literal[...]`` annotation."""
    names = typing.get_args(cls.model_fields["algorithm"].annotation)
    if not names:
        raise TypeError(f"{cls.__name__}.algorithm must be annotated with Literal[...] names")
    for name in names:
        ALGORITHM_CONFIGS[name] = cls
    return cls
