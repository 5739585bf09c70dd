"""Preference data loaders, tokenization, collation and the resumable sampler."""

from __future__ import annotations

import json

import pytest
import torch

from simopt.errors import InputError
from training.data import (
    EpochSampler,
    PreferenceExample,
    TokenizedPair,
    collate_pairs,
    load_disk,
    load_examples,
    load_jsonl,
    tokenize_pair,
)
from training.tokenizer import char_tokenizer


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_strings_and_conversations(tmp_path):
    path = _write(tmp_path / "d.jsonl", [
        {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
        "",
        {"prompt": [{"role": "user", "content": "hi"}],
         "chosen": [{"role": "assistant", "content": "hello"}], "rejected": "go away"},
    ])
    a, b = load_jsonl(path)
    assert a == PreferenceExample("2+2=", "4", "5")
    assert b.prompt == "user: hi\nassistant: " and b.chosen == "hello" and b.rejected == "go away"


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"prompt": "p", "chosen": "a"}], r"d.jsonl:1: missing field 'rejected'"),
        ([{"prompt": "p", "chosen": "a", "rejected": "b"}, "{oops"], r"d.jsonl:2: invalid JSON"),
        ([{"prompt": "p", "chosen": "  ", "rejected": "b"}], r":1: field 'chosen' is an empty"),
        ([{"prompt": "p", "chosen": "a", "rejected": 3}], r"'rejected' must be a string or"),
        ([["p", "a", "b"]], r":1: expected an object"),
        ([""], r"holds no examples"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, rows, match):
    with pytest.raises(InputError, match=match):
        load_jsonl(_write(tmp_path / "d.jsonl", rows))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"'.*nope.jsonl' does not exist; check data.path"):
        load_examples(tmp_path / "nope.jsonl")


def test_load_from_disk_dataset_and_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {"prompt": ["1+1=", "3+1="], "chosen": ["2", "4"], "rejected": ["3", "5"]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    assert [e.chosen for e in load_examples(tmp_path / "ds")] == ["2", "4"]
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_disk(tmp_path / "dd", "train")) == 2
    with pytest.raises(InputError, match="has no split 'test'.*train"):
        load_disk(tmp_path / "dd", "test")
    bad = dict(rows, chosen=["2", ""])
    Dataset.from_dict(bad).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(InputError, match="row 1: field 'chosen' is an empty response"):
        load_disk(tmp_path / "bad")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="not a datasets.save_to_disk directory"):
        load_disk(tmp_path / "empty_dir")


def test_char_tokenizer_is_deterministic_and_round_trips():
    tok = char_tokenizer()
    assert len(tok) == 100
    ids = tok("12+7=19", add_special_tokens=False)["input_ids"]
    assert len(ids) == 7 and tok.decode(ids) == "12+7=19"
    assert char_tokenizer()("az")["input_ids"] == tok("az")["input_ids"]
    assert tok.pad_token_id == 0 and tok.bos_token_id == 1 and tok.eos_token_id == 2


def test_tokenize_truncates_prompt_left_and_response_right():
    tok = char_tokenizer()
    pair = tokenize_pair(PreferenceExample("abcdef", "xyz", "q"), tok, max_prompt_length=4,
                         max_response_length=3)
    assert tok.decode(pair.prompt_ids) == "cdef"  # BOS and the oldest characters dropped
    assert tok.decode(pair.chosen_ids) == "xyz"  # EOS cut by the response limit
    assert pair.rejected_ids[-1] == tok.eos_token_id


def test_collate_masks_mark_responses_only():
    pairs = [TokenizedPair([5, 6], [7], [8, 9, 10]), TokenizedPair([5], [7, 7], [8], phi=None)]
    batch = collate_pairs(pairs, pad_id=0)
    assert batch["input_ids"].shape == (4, 5)
    assert batch["input_ids"][2].tolist() == [5, 6, 8, 9, 10]
    assert batch["response_mask"].tolist() == [
        [0, 0, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 1, 0, 0, 0]]
    assert batch["attention_mask"].sum(1).tolist() == [3, 3, 5, 2]
    assert "phi" not in batch
    with_phi = collate_pairs([TokenizedPair([0], [1], [2], phi=0.5)], pad_id=0)
    assert torch.equal(with_phi["phi"], torch.tensor([0.5], dtype=torch.float64))


def test_epoch_sampler_covers_epochs_and_resumes_exactly():
    s = EpochSampler(5, seed=1)
    first = s.take(5)
    assert sorted(first) == list(range(5))
    mid = s.take(3)
    state = s.state_dict()
    rest = s.take(9)
    t = EpochSampler(5, seed=1)
    t.load_state_dict(state)
    assert t.take(9) == rest
    assert EpochSampler(5, seed=1).take(8) == first + mid
    assert EpochSampler(5, seed=2).take(5) != first or EpochSampler(5, seed=3).take(5) != first
