"""Tests of llmscratch.tokenizer (chapter 1) beyond the checks inside the notebook.

Special-token text is handled like tiktoken does it, and these tests pin that choice down:
`encode` raises ValueError when the text contains a special token that was not allowed,
`encode(..., allowed_special=...)` turns allowed ones into their ids, and `encode_ordinary`
treats the marker as ordinary characters.
"""
from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmscratch import tokenizer as T

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def gpt2():
    return T.load_gpt2_tokenizer(), T.gpt2_encoding()


@pytest.fixture(scope="module")
def course_vocab():
    return T.load_course_tokenizer(), T.load_course_encoding()


@pytest.fixture(scope="module")
def corpus():
    return T.load_corpus()


# Arbitrary Unicode (hypothesis leaves out lone surrogates, which UTF-8 cannot encode), plus text
# built from pieces that stress the regex: contractions, digits, runs of whitespace, emoji.
awkward_pieces = st.sampled_from(["'s", "'ll", " ", "  ", "\n", "\n\n", "\t", "123", " 4", "é", "😀", "<|", "|>", "endoftext", "  x"])
unicode_text = st.one_of(st.text(max_size=80), st.lists(st.one_of(awkward_pieces, st.text(max_size=5)), max_size=20).map("".join))


@SETTINGS
@given(unicode_text)
def test_round_trip_and_tiktoken_parity_gpt2(gpt2, text):
    ours, reference = gpt2
    ids = ours.encode_ordinary(text)
    assert ours.decode(ids) == text
    assert ids == reference.encode_ordinary(text)


@SETTINGS
@given(unicode_text)
def test_round_trip_and_tiktoken_parity_course(course_vocab, text):
    ours, reference = course_vocab
    ids = ours.encode_ordinary(text)
    assert ours.decode(ids) == text
    assert ids == reference.encode_ordinary(text)
    assert all(0 <= i < T.COURSE_VOCAB_SIZE - 1 for i in ids)  # ordinary text never yields EOT


@SETTINGS
@given(st.lists(unicode_text, min_size=1, max_size=4))
def test_allowed_special_tokens_match_tiktoken(gpt2, course_vocab, documents):
    text = T.EOT.join(documents)
    for ours, reference in (gpt2, course_vocab):
        ids = ours.encode(text, allowed_special={T.EOT})
        assert ids == reference.encode(text, allowed_special={T.EOT})
        assert ours.decode(ids) == text
        assert ids.count(ours.special_tokens[T.EOT]) == text.count(T.EOT)


def test_empty_string(gpt2, course_vocab):
    for ours, reference in (gpt2, course_vocab):
        assert ours.encode("") == ours.encode_ordinary("") == reference.encode("") == []
        assert ours.encode("", allowed_special="all") == []
        assert ours.decode([]) == ""


def test_special_token_text_is_handled_deliberately(gpt2, course_vocab):
    text = f"end of one{T.EOT}start of another"
    for ours, reference in (gpt2, course_vocab):
        eot = ours.special_tokens[T.EOT]
        with pytest.raises(ValueError, match="encode_ordinary"):
            ours.encode(text)  # not allowed: an error, never a silent separator
        with pytest.raises(ValueError):
            reference.encode(text)  # tiktoken makes the same choice
        as_text = ours.encode_ordinary(text)
        assert eot not in as_text and ours.decode(as_text) == text
        assert as_text == reference.encode_ordinary(text)
        assert ours.encode(text, allowed_special="all") == ours.encode(text, allowed_special={T.EOT})
        assert ours.encode(T.EOT, allowed_special="all") == [eot]
        assert ours.decode([eot]) == T.EOT
    with pytest.raises(ValueError, match="not special tokens"):
        gpt2[0].encode("x", allowed_special={"<|im_start|>"})
    assert gpt2[0].special_tokens == {T.EOT: 50256}
    assert course_vocab[0].special_tokens == {T.EOT: 4095}


def test_decode_rejects_unknown_ids_and_replaces_broken_utf8(course_vocab):
    ours, _ = course_vocab
    with pytest.raises(ValueError, match="not in this vocabulary"):
        ours.decode([T.COURSE_VOCAB_SIZE])
    euro = ours.encode("€")  # three UTF-8 bytes, not a token of the course vocabulary
    assert len(euro) > 1 and ours.decode(euro[:1]) == "\ufffd"


def test_tiny_corpus_merges_by_hand():
    # Pieces: "to", " be", " or", " not", " to", " be". Pairs seen twice: (" ","b"), ("b","e"),
    # ("t","o"); ties go to the smaller ids, and a space (32) beats "b" (98) and "t" (116).
    # Then (" b","e") and ("t","o") are both seen twice; "t" (116) < " b" (256), so "to" first.
    # After " be" every pair is seen once, and the smallest ids are (" ", "n") = (32, 110).
    expected = [(b" ", b"b"), (b"t", b"o"), (b" b", b"e"), (b" ", b"n")]
    assert T.train_bpe_naive("to be or not to be", 260) == expected
    assert T.train_bpe("to be or not to be", 260) == expected
    tok = T.BPETokenizer.train("to be or not to be", 261)
    assert tok.encode(" be", allowed_special="all") == [258]
    assert tok.encode("to be", allowed_special="all") == [257, 258]
    assert tok.special_tokens == {T.EOT: 260} and tok.n_vocab == 261


def test_merges_never_span_special_tokens():
    # "ab" occurs only across the separator, so it must never be merged.
    merges = T.train_bpe(f"xa{T.EOT}bx xa{T.EOT}bx", 256 + 3)
    assert (b"a", b"b") not in merges


def test_incremental_training_equals_naive_on_corpus_sample(corpus):
    sample = corpus[:40_000] + T.EOT + corpus[-20_000:]  # Shakespeare and modern text
    assert T.train_bpe(sample, 256 + 120) == T.train_bpe_naive(sample, 256 + 120)


def test_training_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="no room"):
        T.BPETokenizer.train("abc", 256)  # 256 bytes + EOT do not fit in 256 ids
    with pytest.raises(ValueError, match="only supports"):
        T.train_bpe("ab ab", 300)  # two pieces cannot support 44 merges


def test_tiktoken_parity_on_corpus_sample(gpt2, course_vocab, corpus):
    sample = corpus[:300_000] + corpus[-300_000:]  # includes a separator and the modern snippets
    for ours, reference in (gpt2, course_vocab):
        assert ours.encode(sample, allowed_special="all") == reference.encode(sample, allowed_special="all")


def test_save_and_load_round_trip(tmp_path):
    tok = T.BPETokenizer.train("the cat sat on the mat with the hat", 256 + 10 + 1)
    tok.save(tmp_path / "tiny.tiktoken")
    loaded = T.BPETokenizer.from_file(tmp_path / "tiny.tiktoken", {T.EOT: 266})
    assert loaded.ranks == tok.ranks and loaded.encode("the hat") == tok.encode("the hat")
    first_lines = (tmp_path / "tiny.tiktoken").read_text().splitlines()[:2]
    assert first_lines == ["AA== 0", "AQ== 1"]  # tiktoken's format: base64 bytes, space, rank


def test_course_vocab_file_is_verified(tmp_path):
    assert T.COURSE_VOCAB_FILE.exists(), "checkpoints/course-bpe-4k.tiktoken must be committed"
    tok = T.load_course_tokenizer()
    assert len(tok.ranks) == 4095 and tok.n_vocab == T.COURSE_VOCAB_SIZE == 4096
    assert tok.pattern == T.GPT2_PATTERN

    corrupt = tmp_path / "corrupt.tiktoken"
    shutil.copy(T.COURSE_VOCAB_FILE, corrupt)
    lines = corrupt.read_text().splitlines(keepends=True)
    lines[300], lines[301] = lines[301], lines[300]  # two ranks swapped: still a valid file
    corrupt.write_text("".join(lines))
    with pytest.raises(T.VocabFileError, match="corrupt"):
        T.load_course_tokenizer(corrupt)
    with pytest.raises(T.VocabFileError, match="corrupt"):
        T.load_course_encoding(corrupt)
    with pytest.raises(T.VocabFileError, match="write_course_vocab"):
        T.load_course_tokenizer(tmp_path / "missing.tiktoken")


def test_bad_rank_files_and_vocabularies_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("AA== 0\nnot-base64!! 1\n")
    with pytest.raises(ValueError, match="line 2"):
        T.read_ranks_file(bad)
    with pytest.raises(ValueError, match="256 single bytes"):
        T.BPETokenizer({b"a": 0})


def test_corpus_documents_exclude_held_out_reviews():
    documents = T.corpus_documents()
    names = [name for name, _ in documents]
    assert len(documents) == 45 and names[-3:] == list(T.MODERN_SOURCES)
    assert "movieReviewSnippets" not in names
    text = T.EOT.join(body for _, body in documents)
    assert text == T.load_corpus()
    reviews = [r for r in T.vader_snippets("movieReviewSnippets") if len(r) > 80]
    assert not any(review in text for review in reviews[::20])
    assert "\r" not in text and "&amp;" not in text


def test_sliding_window_dataset_and_loader():
    ids = list(range(100))
    dataset = T.SlidingWindowDataset(ids, context_length=10, stride=5)
    assert len(dataset) == 18  # starts 0, 5, ..., 85 (a window at 90 would need id 100)
    x, y = dataset[17]
    assert x.tolist() == list(range(85, 95)) and y.tolist() == list(range(86, 96))
    with pytest.raises(IndexError):
        dataset[18]
    with pytest.raises(ValueError, match="at least"):
        T.SlidingWindowDataset(list(range(10)), context_length=10, stride=1)

    loader = T.create_dataloader(torch.arange(1000), batch_size=4, context_length=16, stride=8, seed=3)
    first = [torch.cat(batch) for batch in loader]
    second = [torch.cat(batch) for batch in T.create_dataloader(torch.arange(1000), 4, 16, 8, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # same seed, same batches
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (4, 16) and inputs.dtype == torch.long
    assert torch.equal(targets, inputs + 1)  # ids are positions here, so the shift is +1
    assert len(loader) == len(loader.dataset) // 4


def test_sinusoidal_positions():
    pe = T.sinusoidal_positions(50, 8)
    assert pe.shape == (50, 8)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.isclose(pe[3, 2], torch.sin(torch.tensor(3 / 10000 ** (2 / 8))))
    with pytest.raises(ValueError, match="even"):
        T.sinusoidal_positions(10, 7)
