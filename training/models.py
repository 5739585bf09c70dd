"""Policy networks: tiny presets built from a ``transformers`` config, or a local HF model.

Presets are built with ``AutoModelForCausalLM.from_config`` (nothing is downloaded) and sized so
a training step takes milliseconds on a CPU:

- ``tiny-llama``: ``LlamaConfig`` (RMSNorm, rotary positions, SwiGLU MLP).
- ``tiny-gpt2``: ``GPT2Config`` (learned positions, GELU MLP), dropout off.

Any other ``model.name`` must be a local directory holding a Hugging Face causal LM, loaded with
``local_files_only=True``. ``model.lora`` wraps the model with ``peft`` LoRA adapters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from core.errors import InputError
from training.config import ModelSection
from training.tokenizer import char_tokenizer

LANGUAGE_PRESETS = ("tiny-llama", "tiny-gpt2")
MAX_POSITIONS = 512


def load_tokenizer(cfg: ModelSection) -> PreTrainedTokenizerBase:
    """The tokenizer for ``cfg``: the char tokenizer for presets, else the model's own.

    A tokenizer without a pad token gets ``pad = eos`` (padding is always masked out).
    """
    spec = cfg.tokenizer
    if spec is None:
        spec = "char" if cfg.name in LANGUAGE_PRESETS else cfg.name
    if spec == "char":
        return char_tokenizer()
    if not Path(spec).is_dir():
        raise InputError(f"model.tokenizer {spec!r} is neither 'char' nor a local directory; "
                         "give the path of a saved Hugging Face tokenizer")
    tok = AutoTokenizer.from_pretrained(spec, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def preset_config(cfg: ModelSection, tokenizer: PreTrainedTokenizerBase):
    """The ``transformers`` config of a preset, sized by ``cfg`` and the tokenizer."""
    from transformers import GPT2Config, LlamaConfig

    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if cfg.name == "tiny-llama":
        return LlamaConfig(
            hidden_size=cfg.hidden_size,
            intermediate_size=2 * cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=MAX_POSITIONS,
            tie_word_embeddings=False,
            **common,
        )
    return GPT2Config(
        n_embd=cfg.hidden_size,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_positions=MAX_POSITIONS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **common,
    )


def build_model(cfg: ModelSection, tokenizer: PreTrainedTokenizerBase, seed: int) -> nn.Module:
    """A causal LM for ``cfg`` in fp32, initialised from ``seed`` without touching global RNG.

    Raises:
        InputError: the name is neither a preset nor a local model directory, or LoRA was asked
            for without ``peft`` installed.
    """
    if cfg.name in LANGUAGE_PRESETS:
        config = preset_config(cfg, tokenizer)
        # fork_rng: weight init draws from the global torch RNG; keep the caller's stream intact.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config)
    elif Path(cfg.name).is_dir():
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name, local_files_only=True, dtype=torch.float32
        )
    else:
        raise InputError(
            f"model.name {cfg.name!r} is not a preset ({', '.join(LANGUAGE_PRESETS)}) nor a "
            "local model directory; pick a preset or give the path of a saved HF model"
        )
    model.config.use_cache = False
    if cfg.lora is not None:
        model = _with_lora(model, cfg, seed)
    return model


def _with_lora(model: nn.Module, cfg: ModelSection, seed: int) -> nn.Module:
    try:
        import peft
    except ImportError:
        raise InputError("model.lora needs the 'peft' package: pip install 'peft>=0.12', or "
                         "remove model.lora to train all weights") from None
    assert cfg.lora is not None
    lora_cfg = peft.LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return peft.get_peft_model(model, lora_cfg)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
