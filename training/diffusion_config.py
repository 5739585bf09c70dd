"""Run config of the masked-diffusion family: ``mdm-sft``, ``d1`` (diffu-GRPO) and ``diffpo``.

Registered with :func:`training.config.register_config`, so ``algorithm: d1`` in a YAML file
picks :class:`DiffusionRunConfig`. The common part (optimizer, schedule, ``batch_size`` =
prompts per micro-batch, ...) is :class:`training.config.RunConfig`; ``model:`` names a
masked-diffusion preset (``tiny-mdm``, ``small-mdm``) or a local checkpoint directory;
``data:`` picks the task; everything algorithm-specific lives under ``diffusion:``::

    algorithm: diffpo
    model: {name: tiny-mdm, hidden_size: 32, num_layers: 1, num_heads: 2}
    data: {task: sudoku, n_train: 512, n_eval: 64}
    diffusion:
      init_from: runs/my-sft-run     # weights of a finished mdm-sft run (its last checkpoint)
      group_size: 4                  # G completions per prompt
      joint_sampler: true            # learn a per-prompt sampler setting (DiFFPO's controller)
      controller_target: threshold   # ... a confidence threshold, or `eb`: an entropy bound
      nfe_penalty: 0.01              # reward = task reward - nfe_penalty * NFE / gen_length
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from training.base_config import ModelSection, RunConfig, Section, register_config

# The decoding grids live here, not in training/diffusion_model.py, so that reading a config
# (every CLI command does, through the planner's catalog) does not import torch.
DEFAULT_THRESHOLD_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Entropy bounds (nats) for the EB sampler: 0 decodes one token per step (unless entropies are
# 0); a bound of about (k - 1) log V lets k near-uniform tokens through at once.
DEFAULT_GAMMA_GRID: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)

DIFFUSION_ALGORITHMS = ("mdm-sft", "d1", "diffpo")


class SudokuTaskSection(Section):
    """Generated 4x4 Sudoku puzzles with a unique solution."""

    min_empty: int = Field(4, ge=1, le=12, description="Fewest empty cells of a puzzle.")
    max_empty: int = Field(8, ge=1, le=12, description="Most empty cells of a puzzle.")

    @model_validator(mode="after")
    def _range(self) -> SudokuTaskSection:
        if self.min_empty > self.max_empty:
            raise ValueError(f"data.sudoku.min_empty ({self.min_empty}) must be <= "
                             f"data.sudoku.max_empty ({self.max_empty})")
        return self


class CountdownTaskSection(Section):
    """Generated Countdown problems (solvable by construction)."""

    min_numbers: int = Field(3, ge=2, le=6, description="Fewest numbers per problem.")
    max_numbers: int = Field(3, ge=2, le=6, description="Most numbers per problem.")
    max_number: int = Field(20, ge=1, le=10**4, description="Numbers are drawn from 1..max.")
    max_target: int = Field(100, ge=1, le=10**6, description="Largest target.")

    @model_validator(mode="after")
    def _range(self) -> CountdownTaskSection:
        if self.min_numbers > self.max_numbers:
            raise ValueError(f"data.countdown.min_numbers ({self.min_numbers}) must be <= "
                             f"data.countdown.max_numbers ({self.max_numbers})")
        return self


class LettersTaskSection(Section):
    """Generated letters problems (training/tasks/letters.py): sort, pick or perm k letters."""

    k: int = Field(4, ge=1, le=26, description="Letters per prompt (= answer length).")
    alphabet_size: int = Field(12, ge=1, le=26, description="Letters drawn from a..(size).")
    kinds: list[Literal["sort", "pick", "perm"]] = Field(
        ["sort", "pick", "perm"], min_length=1,
        description="Prompt kinds, in equal shares: sort (one answer), pick (independent "
        "positions), perm (dependent positions).",
    )

    @model_validator(mode="after")
    def _range(self) -> LettersTaskSection:
        if self.k > self.alphabet_size:
            raise ValueError(f"data.letters.k ({self.k}) must be <= data.letters.alphabet_size "
                             f"({self.alphabet_size})")
        return self


class DiffusionDataSection(Section):
    """The task: Sudoku 4x4, Countdown or letters, generated or read from JSONL files."""

    task: Literal["sudoku", "countdown", "letters"] = Field(
        "sudoku", description="sudoku or countdown (d1's tasks and rewards), or letters (the "
        "DiFFPO frontier task: answers with and without dependencies between tokens)."
    )
    path: str | None = Field(
        None, description="JSONL file of the task's problems (training/tasks/<task>.py "
        "load_jsonl format); default: generate data.n_train problems."
    )
    eval_path: str | None = Field(None, description="JSONL file of held-out problems.")
    n_train: int = Field(512, ge=1, le=10**7, description="Generated training problems.")
    n_eval: int = Field(64, ge=1, le=10**6, description="Held-out problems evaluated.")
    instructions: bool = Field(
        False, description="Prefix d1's instructions to each prompt (long; off for tiny models)."
    )
    sudoku: SudokuTaskSection = Field(default_factory=SudokuTaskSection)
    countdown: CountdownTaskSection = Field(default_factory=CountdownTaskSection)
    letters: LettersTaskSection = Field(default_factory=LettersTaskSection)


class DiffusionSection(Section):
    """Masked-diffusion SFT (LLaDA), d1 (diffu-GRPO) and DiFFPO.

    Rollouts decode ``gen_length`` tokens in blocks of ``block_length`` with ``sampler`` at
    ``temperature`` (``top_k``, ``top_p``); d1 scores them with the one-step likelihood, DiFFPO
    with the two-stage likelihood and truncated importance weights (``is_cap``) whose
    denominator is the sampling distribution's probability; both use GRPO with group-mean
    advantages, the clipped ratio (``clip_eps``), a k3 KL penalty (``beta``) against the initial
    model, a fresh prompt mask (and, DiFFPO, split step) per inner update, and the per-sequence
    loss normalisation of the papers (``loss_normalization``).
    """

    gen_length: int = Field(40, ge=1, le=4096, description="Completion tokens G (answer + EOS).")
    block_length: int = Field(40, ge=1, le=4096, description="Tokens per decoding block.")
    sampler: Literal["low_confidence", "threshold", "eb"] = Field(
        "low_confidence", description="Rollout sampler (the controller, when there is one, "
        "drives the sampler of controller_target instead)."
    )
    steps: int | None = Field(
        None, ge=1, le=4096, description="low_confidence steps; default gen_length // 2."
    )
    threshold: float = Field(0.9, ge=0, le=1, description="threshold sampler's confidence tau.")
    gamma: float = Field(0.1, ge=0, le=100, description="eb sampler's entropy bound gamma.")
    temperature: float = Field(
        0.7, ge=0, le=10, description="Rollout temperature (0: greedy, identical group samples)."
    )
    top_k: int | None = Field(
        None, ge=0, le=1 << 20, description="Rollouts sample among the k most likely tokens "
        "(None/0: all); DiFFPO's importance weights account for it."
    )
    top_p: float = Field(
        1.0, gt=0, le=1, description="Rollouts sample from the nucleus of this mass (1: all); "
        "DiFFPO's importance weights account for it."
    )
    group_size: int = Field(4, ge=1, le=1024, description="Completions G per prompt (GRPO).")
    inner_updates: int = Field(
        1, ge=1, le=1000,
        description="mu: optimizer steps per rollout batch; steps k*mu+1..k*mu+mu reuse the "
        "rollouts sampled at step k*mu+1 (ratio taken against the sampling policy), each with "
        "its own prompt mask (and DiFFPO split step), as in d1.",
    )
    clip_eps: float = Field(0.5, gt=0, le=10, description="Clip range epsilon of the ratio.")
    beta: float = Field(0.04, ge=0, le=100, description="KL penalty against the initial model.")
    p_mask_prompt: float = Field(0.15, ge=0, le=1, description="d1's prompt masking rate.")
    is_cap: float = Field(2.0, gt=0, le=1e6, description="DiFFPO importance-weight cap C.")
    nfe_penalty: float | None = Field(
        None, ge=0, le=100,
        description="lambda in reward - lambda * NFE / gen_length (diffpo; default 0.01).",
    )
    loss_normalization: Literal["sequence", "token"] = Field(
        "sequence", description="sequence: mean over completions of each one's token mean "
        "(the GRPO and d1 papers); token: mean over all completion tokens of the batch (d1's "
        "released code)."
    )
    joint_sampler: bool = Field(
        True, description="diffpo: learn the sampler controller jointly with the model."
    )
    controller_target: Literal["threshold", "eb"] = Field(
        "threshold", description="What the controller sets per prompt: the threshold "
        "sampler's confidence tau (from threshold_grid) or the eb sampler's entropy bound "
        "gamma (from gamma_grid)."
    )
    threshold_grid: list[float] = Field(
        list(DEFAULT_THRESHOLD_GRID), min_length=1,
        description="Thresholds the controller chooses from (each in [0, 1]).",
    )
    gamma_grid: list[float] = Field(
        list(DEFAULT_GAMMA_GRID), min_length=1,
        description="Entropy bounds the controller chooses from (each >= 0, nats).",
    )
    grid_rollouts: bool = Field(
        False, description="Without a trained controller (d1, or diffpo with joint_sampler "
        "false): draw each completion's sampler setting uniformly from the controller_target "
        "grid instead of the fixed threshold/gamma (the untrained controller's distribution; "
        "an ablation that gives every method the same rollout sampler).",
    )
    controller_width: int = Field(64, ge=1, le=8192, description="Controller MLP width.")
    controller_lr_scale: float = Field(
        1.0, gt=0, le=1e4, description="Learning-rate multiplier of the controller head (an "
        "Adam-exact reparametrisation; the trainer has one optimizer). A learning rate the "
        "mask predictor tolerates in RL (about 1e-4 for the tiny presets) leaves a "
        "zero-initialised controller near uniform for hundreds of steps: raise this (e.g. 100) "
        "when the controller's entropy does not fall.",
    )
    sft_eps: float = Field(1e-3, ge=0, le=1, description="mdm-sft: smallest masking rate.")
    eval_thresholds: list[float] = Field(
        [0.5, 0.7, 0.9, 1.0], description="Threshold-sampler settings evaluated (greedy)."
    )
    eval_gammas: list[float] = Field(
        [], description="EB-sampler entropy bounds evaluated (greedy), besides the thresholds."
    )
    eval_batch_size: int = Field(128, ge=1, le=1 << 16, description="Prompts per eval batch.")
    init_from: str | None = Field(
        None, description="Start from the weights of a run folder (its newest checkpoint) or a "
        "checkpoint file of this family, e.g. a finished mdm-sft run."
    )

    def resolved_steps(self) -> int:
        """low_confidence steps (default ``gen_length // 2``, at least one per block)."""
        n_blocks = self.gen_length // self.block_length
        return self.steps if self.steps is not None else max(n_blocks, self.gen_length // 2)

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionSection:
        if self.gen_length % self.block_length:
            raise ValueError(f"diffusion.gen_length ({self.gen_length}) must be a multiple of "
                             f"diffusion.block_length ({self.block_length})")
        n_blocks = self.gen_length // self.block_length
        steps = self.resolved_steps()
        if steps % n_blocks or steps > self.gen_length:
            raise ValueError(f"diffusion.steps ({steps}) must be a multiple of the {n_blocks} "
                             f"blocks and at most diffusion.gen_length ({self.gen_length})")
        for name in ("threshold_grid", "eval_thresholds"):
            bad = [t for t in getattr(self, name) if not 0.0 <= t <= 1.0]
            if bad:
                raise ValueError(f"every entry of diffusion.{name} must lie in [0, 1]; got {bad}")
        for name in ("gamma_grid", "eval_gammas"):
            bad = [g for g in getattr(self, name) if not g >= 0.0]
            if bad:
                raise ValueError(f"every entry of diffusion.{name} must be >= 0; got {bad}")
        return self

    def controller_grid(self) -> list[float]:
        """The grid of the controller's (or ``grid_rollouts``') sampler parameter."""
        return self.threshold_grid if self.controller_target == "threshold" else self.gamma_grid


def _mdm_default() -> ModelSection:
    return ModelSection(name="tiny-mdm", hidden_size=64, num_layers=2, num_heads=4)


class DiffusionRunConfig(RunConfig):
    """Run config of the masked-diffusion family (``training.trainers.diffusion``).

    ``batch_size`` is the number of *prompts* per micro-batch for d1/diffpo (each gets
    ``diffusion.group_size`` completions) and of examples for mdm-sft.
    """

    algorithm: Literal["mdm-sft", "d1", "diffpo"] = Field(
        ..., description="mdm-sft (LLaDA SFT), d1 (diffu-GRPO) or diffpo."
    )
    model: ModelSection = Field(default_factory=_mdm_default)
    data: DiffusionDataSection = Field(default_factory=DiffusionDataSection)  # type: ignore[assignment]
    diffusion: DiffusionSection = Field(default_factory=DiffusionSection)

    @model_validator(mode="after")
    def _family_rules(self) -> DiffusionRunConfig:
        if self.model.name in ("tiny-llama", "tiny-gpt2", "tabular"):
            raise ValueError(f"model.name {self.model.name!r} is not a masked-diffusion model; "
                             "use tiny-mdm, small-mdm or a local checkpoint directory")
        if self.model.hidden_size % self.model.num_heads:
            raise ValueError(f"model.hidden_size ({self.model.hidden_size}) must be a multiple "
                             f"of model.num_heads ({self.model.num_heads})")
        d = self.diffusion
        if self.algorithm != "diffpo" and d.nfe_penalty:
            raise ValueError(f"diffusion.nfe_penalty applies to diffpo only, not "
                             f"{self.algorithm}; remove it")
        if d.grid_rollouts and self.uses_controller():
            raise ValueError("diffusion.grid_rollouts draws settings for runs without a trained "
                             "controller; set diffusion.joint_sampler: false or remove it")
        if self.algorithm in ("d1", "diffpo") and d.group_size < 2:
            raise ValueError(f"diffusion.group_size ({d.group_size}) must be >= 2 for "
                             f"{self.algorithm}: group-mean advantages of one sample are 0")
        return self

    def nfe_penalty(self) -> float:
        """``λ`` of the NFE-penalised reward: 0 except for diffpo (default 0.01)."""
        if self.algorithm != "diffpo":
            return 0.0
        return 0.01 if self.diffusion.nfe_penalty is None else self.diffusion.nfe_penalty

    def uses_controller(self) -> bool:
        """Whether the sampler controller is trained (diffpo with ``joint_sampler``)."""
        return self.algorithm == "diffpo" and self.diffusion.joint_sampler


register_config(DiffusionRunConfig)
