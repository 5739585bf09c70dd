"""A deterministic character-level tokenizer for the synthetic tasks.

Built with the ``tokenizers`` library: a BPE model with an empty merge list is exactly a
character tokenizer (every character is its own token), with a fused decoder. It is wrapped as
a :class:`transformers.PreTrainedTokenizerFast` so trainers treat it like any HF tokenizer.

The vocabulary is fixed (not learned from data): ``[PAD] [BOS] [EOS] [UNK]``, the printable
ASCII characters 32..126 and newline, so ids never depend on the dataset or the seed.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")
CHARACTERS = tuple(chr(i) for i in range(32, 127)) + ("\n",)


def char_vocabulary() -> dict[str, int]:
    """Token -> id for the fixed character vocabulary (specials first)."""
    return {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}


def char_tokenizer() -> PreTrainedTokenizerFast:
    """The character tokenizer with pad/bos/eos/unk set; ``len(tok) == 100``.

    Characters outside printable ASCII map to ``[UNK]``. It adds no special tokens on its own:
    trainers place BOS/EOS explicitly so prompt/response boundaries stay visible.
    """
    from tokenizers import Tokenizer, decoders, models

    backend = Tokenizer(models.BPE(vocab=char_vocabulary(), merges=[], unk_token="[UNK]"))
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        unk_token="[UNK]",
        padding_side="right",
    )
