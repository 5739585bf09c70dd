"""Typed run configurations for the training backend, YAML in and out.

A run config is one pydantic model: a common part (model, data, optimizer, schedule, batch,
precision, checkpointing) shared by every algorithm, plus one section named after the
algorithm family (``preference:`` for DPO / IPO / SimPO / MallowsPO). The ``algorithm`` key
picks the class through :data:`ALGORITHM_CONFIGS`; a later family (``opd+``, ``opd``, ``gkd``,
``d1``, ``diffpo``) is added by writing a subclass of :class:`RunConfig` with its section and
calling :func:`register_config`::

    class DistillSection(Section):
        divergence: Literal["reverse_kl", "forward_kl"] = "reverse_kl"

    class DistillRunConfig(RunConfig):
        algorithm: Literal["opd+", "opd", "gkd"]
        distill: DistillSection = Field(default_factory=DistillSection)

    register_config(DistillRunConfig)

Every section forbids unknown keys, so a typo fails with the field named. All user mistakes
surface as :class:`core.errors.InputError` with one line that names the field and the fix.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InputError

PRESET_MODELS = ("tiny-llama", "tiny-gpt2", "tabular")


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


class ModelSection(Section):
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
    hidden_size: int = Field(64, ge=8, le=8192, description="Preset width (presets only).")
    num_layers: int = Field(2, ge=1, le=128, description="Preset depth (presets only).")
    num_heads: int = Field(4, ge=1, le=128, description="Preset attention heads (presets only).")
    lora: LoraSection | None = Field(None, description="Train LoRA adapters, not all weights.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelSection:
        if self.name in PRESET_MODELS and self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.hidden_size ({self.hidden_size}) must be a multiple of model.num_heads "
                f"({self.num_heads})"
            )
        return self


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


ALGORITHM_CONFIGS: dict[str, type[RunConfig]] = {}


def register_config(cls: type[RunConfig]) -> type[RunConfig]:
    """Add a config class for every name in its ``algorithm: Literal[...]`` annotation."""
    names = typing.get_args(cls.model_fields["algorithm"].annotation)
    if not names:
        raise TypeError(f"{cls.__name__}.algorithm must be annotated with Literal[...] names")
    for name in names:
        ALGORITHM_CONFIGS[name] = cls
    return cls


register_config(PreferenceRunConfig)

# Families whose config classes live in their own module (they import this one, so they are
# loaded lazily, on the first lookup, instead of at import time: no import cycle).
FAMILY_MODULES = ("training.distill_config", "training.diffusion_config")


def load_families() -> dict[str, type[RunConfig]]:
    """Import every family config module that exists; return the full registry."""
    import importlib
    import importlib.util

    for name in FAMILY_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return ALGORITHM_CONFIGS


# ---------------------------------------------------------------------------------------------
# Parsing, YAML, overrides


def _field_names(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Known keys of the section at ``loc`` (for 'did you mean' in unknown-key errors)."""
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *typing.get_args(ann)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _validation_message(cls: type[RunConfig], exc: ValidationError, source: str) -> str:
    """One line naming the first offending field, what is wrong and how to fix it."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not isinstance(p, int)) or ("<root>",)
    field = ".".join(str(p) for p in err["loc"])
    where = f" in {source}" if source else ""
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        known = _field_names(cls, loc[:-1])
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return f"config field {field!r}{where}: unknown key; remove it or fix the spelling{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("value_error", "assertion_error"):
        return f"config{where}: {msg}{more}"
    got = err.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"config field {field!r}{where}: {msg}{got_txt}; fix this value{more}"


def parse_config(data: dict[str, Any] | RunConfig, source: str = "") -> RunConfig:
    """Validate a config dict into the class registered for its ``algorithm``.

    Raises:
        InputError: unknown algorithm, unknown key, wrong type or out-of-range value; the
            message names the field and the fix.
    """
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise InputError(f"config{' ' + source if source else ''} must be a mapping of keys to "
                         f"values, got {type(data).__name__}")
    algorithm = data.get("algorithm")
    if algorithm is not None and str(algorithm) not in ALGORITHM_CONFIGS:
        load_families()
    if algorithm is None:
        raise InputError(f"config{' ' + source if source else ''} has no 'algorithm'; set it to "
                         f"one of: {', '.join(sorted(ALGORITHM_CONFIGS))}")
    cls = ALGORITHM_CONFIGS.get(str(algorithm))
    if cls is None:
        raise InputError(f"config field 'algorithm': unknown algorithm {algorithm!r}; use one "
                         f"of: {', '.join(sorted(ALGORITHM_CONFIGS))}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(cls, exc, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; missing files and syntax errors become one-line InputErrors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {str(path)!r} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"config file {str(path)!r}{where}: invalid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"config file {str(path)!r} must hold a mapping (key: value lines), "
                         f"not a {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config, apply ``key=value`` overrides, and validate it."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return parse_config(data, source=str(path))


def dump_config(cfg: RunConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (round-trips through :func:`load_config`)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    Path(path).write_text(text)


def apply_overrides(cfg_dict: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg_dict`` with dotted ``key=value`` overrides applied.

    Values are parsed as YAML, so ``preference.beta=0.2`` gives a float, ``resume=true`` a bool,
    ``model.lora=null`` None and ``optimizer.betas=[0.9,0.95]`` a list.
    """
    out = _deep_copy(cfg_dict)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"override {item!r} is not key=value; write e.g. preference.beta=0.2")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


# ---------------------------------------------------------------------------------------------
# Paths: confined to the runs directory

# Config keys (in any section) that name files or folders: written (output_dir, cache_dir) or
# read (path, eval_path, init_from). model.name / teacher.name are not here: besides a local
# folder they may be a preset or a cached Hugging Face id, and they are only read.
WRITE_PATH_FIELDS = ("output_dir", "cache_dir")
PATH_FIELDS = (*WRITE_PATH_FIELDS, "path", "eval_path", "init_from")


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` (relative to the working directory, as the trainers open it) lies in
    ``root`` once symlinks and ``..`` are resolved (``os.path.realpath`` on both)."""
    target, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return target == base or base in target.parents


def path_errors(cfg: RunConfig | dict[str, Any], root: str | Path,
                fields: tuple[str, ...] = PATH_FIELDS) -> list[str]:
    """One message per path-valued config field (``fields``) that leaves ``root``.

    ``../../etc``, an absolute path elsewhere and a symlink inside ``root`` that points out
    are all refused. (A symlink created after this check is outside what a check can see.)
    """
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    errors: list[str] = []

    def walk(d: dict[str, Any], prefix: str) -> None:
        for key, value in d.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif key in fields and isinstance(value, str) and value and not inside(value, root):
                errors.append(
                    f"config field {prefix + key!r}: path {value!r} resolves to "
                    f"{os.path.realpath(value)}, outside the runs directory "
                    f"{os.path.realpath(root)}; use a path inside it (or point "
                    "SOCRATES_RUNS_DIR elsewhere)"
                )

    walk(data, "")
    return errors


def check_paths(cfg: RunConfig, root: str | Path,
                fields: tuple[str, ...] = WRITE_PATH_FIELDS) -> RunConfig:
    """``cfg`` unchanged, or :class:`InputError` naming the first path field outside ``root``."""
    errors = path_errors(cfg, root, fields)
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(errors[0] + more)
    return cfg


from training import distill_config  # noqa: E402,F401  (registers opd+/opd/gkd)
