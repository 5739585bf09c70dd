"""Masked-diffusion language models (LLaDA-style mask predictors) behind one interface.

A masked-diffusion LM is a *bidirectional* transformer that reads a sequence in which some
positions hold a special mask token and predicts, at every position, a distribution over the
vocabulary (Nie et al. 2025, "Large Language Diffusion Models", arXiv 2502.09992). Everything
else in the DiFFPO stack (samplers, losses) only needs::

    logits = model(input_ids)                  # (B, L) -> (B, L, V), one forward pass = 1 NFE
    model.mask_token_id, model.vocab_size

Two ways to get one:

- :func:`build_diffusion_model`: a tiny preset built from a ``transformers`` config (nothing is
  downloaded): ``tiny-mdm`` / ``small-mdm`` are ``BertForMaskedLM`` (learned absolute position
  embeddings), ``tiny-mdm-rope`` / ``small-mdm-rope`` are ``RoFormerForMaskedLM`` of the same
  sizes (rotary position encoding, Su et al. 2021: attention scores depend on positions only
  through their offset). Both are bidirectional by construction, so no causal mask has to be
  switched off. If the tokenizer has no mask token (the built-in char tokenizer has none), the
  mask token is appended as id ``len(tokenizer)``.

NOTE: prefer the ``-rope`` presets for tasks that copy tokens from the prompt at a fixed offset
(Sudoku: answer cell ``i`` repeats clue ``i``). Trained from scratch with the LLaDA loss on 4x4
Sudoku, the BERT preset stayed for 1500+ steps on the plateau where every digit is at chance
(it never learned to copy a clue), while the rotary preset of the same size learned to copy
within a few hundred steps; see ``bench/results/diffpo_frontier.md``. Rotary models are also
invariant to left padding (with the attention mask), which absolute positions are not.
- :func:`load_diffusion_model`: a local LLaDA-style checkpoint directory, loaded with
  ``local_files_only=True``; its custom modelling code runs only with ``trust_remote_code=True``
  passed explicitly.

NOTE: :meth:`MaskedDiffusionLM.forward` sets the logit of the mask token itself to a very
negative finite value, so the predicted distribution is over the ``V - 1`` real tokens: a sampler
can never "unmask" a position into the mask token, and a model with constant logits predicts
uniformly over ``V - 1`` tokens (cross-entropy ``log(V - 1)``). A finite value (not ``-inf``)
keeps ``p log p`` and ``log_softmax`` free of NaNs.

:class:`SamplerController` is the DiFFPO sampler head: a categorical over a grid of values of one
sampler parameter (Fast-dLLM confidence thresholds ``τ`` or entropy bounds ``γ`` of the EB
sampler), conditioned on the pooled prompt representation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from core.errors import InputError
from training.diffusion_config import DEFAULT_GAMMA_GRID, DEFAULT_THRESHOLD_GRID

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from training.config import ModelSection

__all__ = [
    "DEFAULT_GAMMA_GRID",
    "DEFAULT_THRESHOLD_GRID",
    "DIFFUSION_PRESETS",
    "MaskedDiffusionLM",
    "ROTARY_PRESETS",
    "SamplerController",
    "build_diffusion_model",
    "diffusion_model_from_section",
    "load_diffusion_model",
    "save_diffusion_model",
]

# Sizes of the presets: width, depth, heads, MLP width, max positions.
DIFFUSION_PRESETS: dict[str, dict[str, int]] = {
    "tiny-mdm": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256,
                     max_positions=512),
    "small-mdm": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                      max_positions=512),
    "tiny-mdm-rope": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256,
                          max_positions=512),
    "small-mdm-rope": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512,
                           max_positions=512),
}

# Presets built as RoFormerForMaskedLM (rotary positions); the others are BertForMaskedLM.
ROTARY_PRESETS: frozenset[str] = frozenset({"tiny-mdm-rope", "small-mdm-rope"})


# NOTE: the logit given to the mask token. softmax maps it to exactly 0 in fp32 and fp64 while
# log_softmax stays finite, so entropies and KL terms never see 0 * inf.
_MASK_LOGIT = -1e9


class MaskedDiffusionLM(nn.Module):
    """A mask predictor: full-sequence logits from a bidirectional transformer.

    Args:
        model: a Hugging Face module whose output has ``.logits`` of shape ``(B, L, V)``
            (``BertForMaskedLM``, LLaDA's ``LLaDAModelLM``, ...).
        mask_token_id: id of the mask token, ``0 <= mask_token_id < V``.
        vocab_size: ``V``, the width of the logits (including the mask token).

    Attributes:
        mask_token_id: as given.
        vocab_size: as given.
        hidden_size: width of the last hidden state (for :class:`SamplerController`).
    """

    def __init__(self, model: nn.Module, mask_token_id: int, vocab_size: int) -> None:
        super().__init__()
        if not 0 <= mask_token_id < vocab_size:
            raise InputError(f"mask_token_id {mask_token_id} is outside the vocabulary "
                             f"[0, {vocab_size}); pass the id of the model's mask token")
        self.model = model
        self.mask_token_id = int(mask_token_id)
        self.vocab_size = int(vocab_size)
        config = getattr(model, "config", None)
        self.hidden_size = int(getattr(config, "hidden_size", getattr(config, "d_model", 0)))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits at every position.

        Args:
            input_ids: ``(B, L)`` token ids, masked positions hold ``mask_token_id``.
            attention_mask: optional ``(B, L)`` with 1 for real tokens and 0 for padding.

        Returns:
            ``(B, L, V)`` float logits; the mask token's column is ``-1e9`` (never predicted).
        """
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        logits = self.model(input_ids=input_ids, **kwargs).logits
        logits = logits[..., : self.vocab_size].float()
        return logits.index_fill(-1, _index(self.mask_token_id, logits.device), _MASK_LOGIT)

    def pooled_prompt_state(self, input_ids: Tensor, prompt_len: int,
                            attention_mask: Tensor | None = None) -> Tensor:
        """Mean of the last hidden state over the prompt, the prompt read on its own.

        Only ``input_ids[:, :prompt_len]`` is fed (one extra forward pass over the prompt,
        which :func:`training.sampling.generate` does not count as NFE).

        Args:
            input_ids: ``(B, L)`` with the prompt in the first ``prompt_len`` columns.
            prompt_len: number of prompt columns ``P >= 1``.
            attention_mask: optional ``(B, L)`` (or ``(B, P)``); padded positions are left out
                of the mean.

        Returns:
            ``(B, H)`` pooled representation.
        """
        if prompt_len < 1 or prompt_len > input_ids.shape[1]:
            raise InputError(f"prompt_len {prompt_len} must lie in [1, {input_ids.shape[1]}]")
        ids = input_ids[:, :prompt_len]
        keep = (torch.ones_like(ids) if attention_mask is None
                else attention_mask[:, :prompt_len].to(ids.dtype))
        out = self.model(input_ids=ids, attention_mask=keep, output_hidden_states=True)
        hidden = out.hidden_states[-1].float()  # (B, P, H)
        weights = keep.to(hidden.dtype).unsqueeze(-1)  # (B, P, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _index(i: int, device: torch.device) -> Tensor:
    return torch.tensor([i], device=device)


def build_diffusion_model(
    name: str = "tiny-mdm",
    *,
    vocab_size: int,
    mask_token_id: int | None = None,
    pad_token_id: int | None = None,
    seed: int = 0,
    hidden_size: int | None = None,
    num_layers: int | None = None,
    num_heads: int | None = None,
    max_positions: int | None = None,
) -> MaskedDiffusionLM:
    """A preset mask predictor built from config, initialised from ``seed``.

    Args:
        name: a key of :data:`DIFFUSION_PRESETS`; ``RoFormerForMaskedLM`` (rotary positions) for
            the names in :data:`ROTARY_PRESETS`, ``BertForMaskedLM`` otherwise.
        vocab_size: number of real tokens of the tokenizer. If ``mask_token_id`` is None the
            mask token is appended (id ``vocab_size``) and the model's vocabulary is
            ``vocab_size + 1``.
        mask_token_id: the tokenizer's own mask token id, if it has one.
        pad_token_id: padding id (for the embedding's padding row), default 0.
        seed: init seed; the global torch RNG is left untouched.
        hidden_size, num_layers, num_heads, max_positions: override the preset's sizes.

    Raises:
        InputError: unknown preset, or a width that the number of heads does not divide.
    """
    from transformers import BertConfig, BertForMaskedLM, RoFormerConfig, RoFormerForMaskedLM

    if name not in DIFFUSION_PRESETS:
        raise InputError(f"unknown masked-diffusion preset {name!r}; use one of "
                         f"{', '.join(DIFFUSION_PRESETS)} or load_diffusion_model(path)")
    sizes = dict(DIFFUSION_PRESETS[name])
    for key, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                       ("num_heads", num_heads), ("max_positions", max_positions)):
        if value is not None:
            sizes[key] = value
    if hidden_size is not None:
        sizes["intermediate_size"] = 4 * hidden_size
    if sizes["hidden_size"] % sizes["num_heads"]:
        raise InputError(f"hidden_size ({sizes['hidden_size']}) must be a multiple of num_heads "
                         f"({sizes['num_heads']})")
    total_vocab = vocab_size if mask_token_id is not None else vocab_size + 1
    mask_id = mask_token_id if mask_token_id is not None else vocab_size
    common = dict(
        vocab_size=total_vocab,
        hidden_size=sizes["hidden_size"],
        num_hidden_layers=sizes["num_layers"],
        num_attention_heads=sizes["num_heads"],
        intermediate_size=sizes["intermediate_size"],
        max_position_embeddings=sizes["max_positions"],
        type_vocab_size=1,
        # Dropout off: rollouts, likelihoods and their importance ratios must be deterministic.
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0 if pad_token_id is None else pad_token_id,
    )
    rotary = name in ROTARY_PRESETS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if rotary:
            model = RoFormerForMaskedLM(RoFormerConfig(embedding_size=sizes["hidden_size"],
                                                       **common))
        else:
            model = BertForMaskedLM(BertConfig(**common))
    return MaskedDiffusionLM(model, mask_token_id=mask_id, vocab_size=total_vocab)


def load_diffusion_model(
    path: str | Path,
    *,
    trust_remote_code: bool = False,
    mask_token_id: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> MaskedDiffusionLM:
    """Load a local mask predictor (a saved preset or an LLaDA-style checkpoint directory).

    The mask token id comes from, in order: ``mask_token_id``; the config's ``mask_token_id``;
    the tokenizer's ``mask_token_id`` if the directory holds a tokenizer. LLaDA's is 126336.

    Args:
        path: a local directory (``local_files_only=True``; nothing is downloaded).
        trust_remote_code: run the directory's own modelling code (LLaDA needs it). Off by
            default: only set it for checkpoints you trust.
        mask_token_id: override the mask token id.
        dtype: parameter dtype.

    Raises:
        InputError: not a directory, a checkpoint that needs ``trust_remote_code``, or no way
            to find the mask token.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"masked-diffusion model path {str(path)!r} is not a local directory; "
                         "give the folder of a saved checkpoint (config.json + weights)")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True,
                                            trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            raise InputError(f"{str(path)!r} ships its own modelling code (e.g. LLaDA); pass "
                             "trust_remote_code=True if you trust it") from None
        raise
    kwargs = dict(local_files_only=True, trust_remote_code=trust_remote_code, dtype=dtype)
    if getattr(config, "auto_map", None) and "AutoModelForMaskedLM" not in config.auto_map:
        model = AutoModel.from_pretrained(path, **kwargs)  # LLaDA registers AutoModel only
    else:
        model = AutoModelForMaskedLM.from_pretrained(path, **kwargs)
    if mask_token_id is None:
        mask_token_id = getattr(config, "mask_token_id", None)
    if mask_token_id is None and (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path, local_files_only=True,
                                            trust_remote_code=trust_remote_code)
        mask_token_id = tok.mask_token_id
    if mask_token_id is None:
        raise InputError(f"cannot find the mask token of {str(path)!r}; pass mask_token_id "
                         "(LLaDA: 126336)")
    vocab_size = getattr(config, "vocab_size", None)
    if not vocab_size:
        vocab_size = model.get_output_embeddings().weight.shape[0]
    return MaskedDiffusionLM(model, mask_token_id=int(mask_token_id), vocab_size=int(vocab_size))


def diffusion_model_from_section(cfg: ModelSection, tokenizer: PreTrainedTokenizerBase,
                                 seed: int, trust_remote_code: bool = False) -> MaskedDiffusionLM:
    """The mask predictor a run config asks for: a preset sized by ``cfg`` or a local directory.

    For a preset, the vocabulary is the tokenizer's, plus an appended mask token when the
    tokenizer has none (the char tokenizer: 100 tokens, mask id 100).
    """
    if cfg.name in DIFFUSION_PRESETS:
        return build_diffusion_model(
            cfg.name, vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id, seed=seed, hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers, num_heads=cfg.num_heads)
    return load_diffusion_model(cfg.name, trust_remote_code=trust_remote_code)


def save_diffusion_model(model: MaskedDiffusionLM, path: str | Path) -> None:
    """Save ``model`` so :func:`load_diffusion_model` restores it (mask id kept in the config)."""
    model.model.config.mask_token_id = model.mask_token_id
    model.model.save_pretrained(path)


class _Scaled(nn.Module):
    """Parametrization ``used = c · stored`` whose gradient reaches ``stored`` unscaled
    (``∂used/∂stored`` taken as 1), so gradient norms and their clipping are those of the plain
    head while an Adam step of size ``lr`` on ``stored`` moves ``used`` by ``c · lr``."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, stored: Tensor) -> Tensor:
        return stored + (stored * (self.c - 1.0)).detach()

    def right_inverse(self, used: Tensor) -> Tensor:
        return used / self.c


class SamplerController(nn.Module):
    """DiFFPO's learned sampler: a categorical over values of one sampler parameter, given the
    prompt.

    ``π_φ(k | x) = softmax(MLP(h(x)))_k`` over a grid ``v_1 < ... < v_K`` of either Fast-dLLM
    confidence thresholds ``τ`` (``parameter="threshold"``, the ``threshold`` sampler) or
    entropy bounds ``γ`` (``parameter="gamma"``, the ``eb`` sampler), where ``h(x)`` is
    :meth:`MaskedDiffusionLM.pooled_prompt_state`. It is trained by GRPO on (value, completion)
    samples (:func:`training.losses.diffusion.controller_loss`). The output layer starts at zero,
    so the initial policy is uniform over the grid.

    ``lr_scale = c`` stores every parameter as ``θ / c`` and uses ``c · stored``, passing the
    gradient to ``stored`` unscaled (:class:`_Scaled`, a :mod:`torch.nn.utils.parametrize`
    parametrization). Under Adam/AdamW that is a learning rate ``c`` times the optimizer's for
    this head alone: the stored value moves by Adam's step and the used one by ``c`` times it,
    while gradient norms (and clipping) stay the plain head's; decoupled weight decay keeps
    its rate per step. NOTE: the head needs it because the trainer has one
    optimizer: a learning rate the mask predictor tolerates in RL moves a zero-initialised
    head's logits by about ``lr`` per step, far too slowly to learn a per-prompt choice in a few
    hundred steps (``bench/results/diffpo_frontier.md``).

    Args:
        hidden_size: width ``H`` of the pooled state.
        grid: the parameter's values: thresholds in ``[0, 1]``, or bounds ``>= 0``.
        width: hidden width of the MLP.
        parameter: ``"threshold"`` or ``"gamma"``; :attr:`sampler` names the matching sampler.
        lr_scale: learning-rate multiplier of this head (``> 0``; 1 leaves it plain).
    """

    def __init__(self, hidden_size: int, grid: Sequence[float] = DEFAULT_THRESHOLD_GRID,
                 width: int = 64, parameter: str = "threshold", lr_scale: float = 1.0) -> None:
        super().__init__()
        if not lr_scale > 0:
            raise InputError(f"controller lr_scale must be > 0, got {lr_scale}")
        if parameter not in ("threshold", "gamma"):
            raise InputError(f"controller parameter {parameter!r} is unknown; use 'threshold' "
                             "(Fast-dLLM confidence) or 'gamma' (EB entropy bound)")
        grid = [float(g) for g in grid]
        upper = 1.0 if parameter == "threshold" else float("inf")
        if not grid or any(not 0.0 <= g <= upper for g in grid):
            bounds = "[0, 1]" if parameter == "threshold" else "[0, inf)"
            raise InputError(f"{parameter} grid {grid} must be a non-empty list of values in "
                             f"{bounds}")
        self.parameter = parameter
        self.register_buffer("grid", torch.tensor(grid), persistent=True)
        self.net = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width),
                                 nn.GELU(), nn.Linear(width, len(grid)))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.lr_scale = float(lr_scale)
        if self.lr_scale != 1.0:  # plain heads keep their state-dict keys
            from torch.nn.utils import parametrize

            for module in self.net:
                for name, _ in list(module.named_parameters(recurse=False)):
                    parametrize.register_parametrization(module, name,
                                                         _Scaled(self.lr_scale))

    @property
    def sampler(self) -> str:
        """The sampler whose parameter this controller sets: ``threshold`` or ``eb``."""
        return "threshold" if self.parameter == "threshold" else "eb"

    def forward(self, pooled: Tensor) -> Tensor:
        """``(B, H)`` pooled prompt states -> ``(B, K)`` logits over the grid."""
        return self.net(pooled)

    def log_prob(self, pooled: Tensor, index: Tensor) -> Tensor:
        """``log π_φ(index | x)``, shape ``(B,)``."""
        logp = torch.log_softmax(self(pooled), dim=-1)
        return logp.gather(-1, index.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, pooled: Tensor, generator: torch.Generator | None = None,
               greedy: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Draw one grid value per prompt (the argmax with ``greedy``).

        Returns:
            ``(index, value, logprob)``, each of shape ``(B,)``: the grid index (long), the
            parameter value ``grid[index]`` and ``log π_φ(index | x)`` (differentiable).
        """
        logp = torch.log_softmax(self(pooled), dim=-1)
        if greedy:
            index = logp.argmax(-1)
        else:
            index = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(-1)
        return index, self.grid[index], logp.gather(-1, index.unsqueeze(-1)).squeeze(-1)
