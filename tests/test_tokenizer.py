"""Tests of llmscratch.tokenizer (chapter 1) beyond the checks inside the notebook.

Special-token text is handled like tiktoken does it, and these tests pin that choice down:
`encode` raises ValueError when the text contains a special token that was not allowed,
`encode(..., allowed_special=...)` turns allowed ones into their ids, and `encode_ordinary`
treats the marker as ordinary characters. Where special tokens overlap, the longest one wins
(a property test against a plain reference parser, and against tiktoken where its choice is
defined). `encode_iterable` gives exactly the ids of `encode` on the joined text, in flat memory.
Both BPE trainers break ties by the smaller pair of ids, or by the greater pair of bytes.
"""
from __future__ import annotations

import os
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
# Characters assigned in Python 3.11's Unicode tables (version 14). Our `regex` module and
# tiktoken's Rust regex carry newer tables that may disagree on whether a character assigned
# since then is a letter (U+323B0, say), which changes the pre-tokenisation, not the BPE.
assigned = st.characters(blacklist_categories=("Cn", "Cs"))
unicode_text = st.one_of(
    st.text(assigned, max_size=80),
    st.lists(st.one_of(awkward_pieces, st.text(assigned, max_size=5)),
             max_size=20).map("".join))


@SETTINGS
@given(unicode_text)
def test_round_trip_and_tiktoken_parity_gpt2(gpt2, text):
    ours, reference = gpt2
    ids = ours.encode_ordinary(text)
    assert ours.decode(ids) == text
    assert ids == reference.encode_ordinary(text)


# All-ASCII text takes the pre-tokeniser's short cut (built-in `re`, spelled-out classes)
ascii_pieces = st.sampled_from(["'s", "'ll", "'D", " ", "  ", "\n\n", "\t", "\x0b", "\x1c", "\x1f",
                                " 4", "x", "_", "  x", "!?"])
ascii_text = st.lists(st.one_of(ascii_pieces, st.text(st.characters(max_codepoint=127), max_size=5)),
                      max_size=20).map("".join)


@SETTINGS
@given(ascii_text)
def test_ascii_short_cut_matches_tiktoken(gpt2, text):
    ours, reference = gpt2
    assert T.piece_finder()(text) == T.GPT2_REGEX.findall(text)
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


def test_tokenizers_can_be_pickled(gpt2):
    import pickle

    text = "Plain ASCII, and then some naïve café."
    smol_like = T.BPETokenizer({bytes([b]): b for b in range(256)}, pattern=r"\w+|\W")
    for tokenizer in (gpt2[0], smol_like):
        copy = pickle.loads(pickle.dumps(tokenizer))
        assert copy.encode_ordinary(text) == tokenizer.encode_ordinary(text)


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


# ---------------------------------------------------------------- special tokens that overlap
# Special tokens are drawn from a small alphabet, so that one is often the beginning of another
# ("<", "<|", "<|a"); ordinary text never uses those characters, so it cannot form one by accident.
SPECIAL_ALPHABET = "<|>ab"
special_strings = st.text(alphabet=SPECIAL_ALPHABET, min_size=1, max_size=6)
ordinary_text = st.text(st.characters(blacklist_characters=SPECIAL_ALPHABET,
                                      blacklist_categories=("Cn", "Cs")),
                        max_size=12)


def longest_match_parse(text: str, specials: dict[str, int]):
    """Reference: scan left to right; at each position take the longest special that matches."""
    segments, plain, i = [], "", 0
    by_length = sorted(specials, key=len, reverse=True)
    while i < len(text):
        match = next((s for s in by_length if text.startswith(s, i)), None)
        if match is None:
            plain += text[i]
            i += 1
        else:
            segments += [plain, match]
            plain, i = "", i + len(match)
    return segments + [plain]


@SETTINGS
@given(st.lists(special_strings, min_size=1, max_size=5, unique=True),
       st.lists(st.tuples(ordinary_text, st.integers(0, 4)), max_size=8),
       ordinary_text, st.booleans())
def test_longest_special_token_wins(course_vocab, special_list, inserts, tail, separated):
    base, _ = course_vocab
    specials = {s: T.COURSE_VOCAB_SIZE + i for i, s in enumerate(special_list)}
    tok = T.BPETokenizer(base.ranks, specials)
    inserted, parts = [], []
    for plain, k in inserts:
        token = special_list[k % len(special_list)]
        if separated and not plain:
            plain = " "  # an ordinary character between two inserted special tokens
        parts += [plain, token]
        inserted.append(token)
    text = "".join(parts) + (tail or " ")
    ids = tok.encode(text, allowed_special="all")
    assert tok.decode(ids) == text
    found = [i for i in ids if i >= T.COURSE_VOCAB_SIZE]
    # the reference parse, independent of regular expressions
    segments = longest_match_parse(text, specials)
    assert found == [specials[s] for s in segments[1::2]]
    expected = []
    for n, segment in enumerate(segments):
        expected += [specials[segment]] if n % 2 else base.encode_ordinary(segment)
    assert ids == expected
    if separated:  # nothing touches: each inserted token comes back as exactly its id
        assert found == [specials[s] for s in inserted]
    # training splits the same way
    assert T.split_on_special(text, special_list) == segments[0::2]
    prefix_free = not any(a != b and b.startswith(a) for a in specials for b in specials)
    if prefix_free:  # tiktoken's choice among overlapping tokens is unspecified otherwise
        assert ids == tok.to_tiktoken("overlap").encode(text, allowed_special="all")


def test_longer_special_token_is_never_split(gpt2):
    ours, _ = gpt2
    double = T.EOT + T.EOT
    tok = T.BPETokenizer(ours.ranks, {T.EOT: 50256, double: 50257})
    text = f"one {double} two {T.EOT} three {T.EOT}{T.EOT}{T.EOT}"
    found = [i for i in tok.encode(text, allowed_special="all") if i >= 50256]
    assert found == [50257, 50256, 50257, 50256]
    assert T.split_on_special(text, (T.EOT, double)) == ["one ", " two ", " three ", "", ""]
    with pytest.raises(ValueError, match="none empty"):
        T.special_regex(["", T.EOT])


# ---------------------------------------------------------------- streaming encoder
stream_text = st.lists(st.one_of(awkward_pieces, st.sampled_from([T.EOT, "\n    ", " a", "'l"]),
                                 st.text(assigned, max_size=6)), max_size=30).map("".join)


@SETTINGS
@given(stream_text, st.lists(st.integers(0, 200), max_size=12), st.integers(1, 40))
def test_encode_iterable_equals_whole_text(gpt2, text, cuts, buffer_size):
    ours, reference = gpt2
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    streamed = list(ours.encode_iterable(chunks, allowed_special="all", buffer_size=buffer_size))
    assert streamed == ours.encode(text, allowed_special="all")
    assert streamed == reference.encode(text, allowed_special="all")


def test_encode_iterable_cuts_inside_whitespace_runs_and_special_tokens(gpt2):
    ours, _ = gpt2
    lines = ["To be, or not\n", "        to be\n", "\n", "   \n", "  that is", "  ", "  the"]
    text = "".join(lines)
    assert list(ours.encode_iterable(lines, buffer_size=1)) == ours.encode(text)
    by_line = [i for line in lines for i in ours.encode(line)]
    assert by_line != ours.encode(text)  # so the cut really matters here
    chunks = ["a b<|endof", "text|> c d", " e"]
    with pytest.raises(ValueError, match="special token"):
        list(ours.encode_iterable(chunks, buffer_size=1))  # not allowed, even when cut
    assert list(ours.encode_iterable(chunks, {T.EOT}, buffer_size=1)) == \
        ours.encode("".join(chunks), {T.EOT})
    other = T.BPETokenizer(ours.ranks, pattern=r"\S+|\s+")
    with pytest.raises(ValueError, match="GPT-2's pattern"):
        list(other.encode_iterable(["a b"]))


# 50 MB of text stream through in flat memory (resident memory grew by 4.3 MB when measured),
# at about 27 s of CPU with the tiktoken comparison; LLMS_STREAM_MB sets another size.
STREAM_MB = int(os.environ.get("LLMS_STREAM_MB", "50"))
STREAM_RSS_BUDGET_MB = 50


def generated_lines(n_chars: int, seed: int = 0):
    """About n_chars of verse-like text, line by line, with a document separator every 2,000
    lines: indented lines and blank lines (whitespace runs across line ends), contractions,
    numbers, punctuation and a little non-ASCII. Deterministic and never held in memory."""
    import random

    rng = random.Random(seed)
    words = ["the", "King", "thou", "art", "we'll", "o'er", "I'm", "1599", "love", "naïve", "🙂",
             "--", "sweet", "Romeo", "isn't", "42", "night", "fair", "café", "what?!", "day"]
    pool = []
    for _ in range(3000):
        indent = " " * rng.choice([0, 0, 2, 4, 8])
        body = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        pool.append(indent + body + rng.choice(["\n", "\n", ",\n", ".\n", "  \n", "\n\n"]))
    produced, n = 0, 0
    while produced < n_chars:
        line = pool[(n * 7919) % len(pool)]
        if n % 2000 == 1999:
            line += T.EOT
        produced += len(line)
        n += 1
        yield line


def documents_of(lines):
    """Group lines into the documents between separators (each a list of lines)."""
    document = []
    for line in lines:
        if T.EOT in line:
            head, tail = line.split(T.EOT)
            yield document + [head]
            document = [tail] if tail else []
        else:
            document.append(line)
    yield document


def test_encode_iterable_large_text_in_flat_memory(gpt2):
    """STREAM_MB of generated text through the streaming encoder: resident memory grows by less
    than STREAM_RSS_BUDGET_MB, and every id equals tiktoken's (tiktoken encodes document by
    document, which equals encoding the whole text since the separator is a special token)."""
    import array
    import gc
    import hashlib
    import itertools

    import psutil

    ours, reference = gpt2
    ours = T.BPETokenizer(ours.ranks, ours.special_tokens)  # empty cache: its growth counts
    process = psutil.Process()
    gc.collect()
    baseline = peak = process.memory_info().rss
    n_chars = STREAM_MB * 1_000_000
    ours_hash, n_ours = hashlib.sha256(), 0
    stream = ours.encode_iterable(generated_lines(n_chars), allowed_special={T.EOT})
    while batch := array.array("l", itertools.islice(stream, 200_000)):
        ours_hash.update(batch.tobytes())
        n_ours += len(batch)
        peak = max(peak, process.memory_info().rss)
    growth_mb = (peak - baseline) / 1e6
    print(f"\nstreamed {STREAM_MB} MB into {n_ours:,} tokens; resident memory grew by "
          f"{growth_mb:.1f} MB (budget {STREAM_RSS_BUDGET_MB} MB)")
    assert growth_mb < STREAM_RSS_BUDGET_MB

    reference_hash, n_reference = hashlib.sha256(), 0
    eot = [reference.eot_token]
    for k, document in enumerate(documents_of(generated_lines(n_chars))):
        ids = (eot if k else []) + reference.encode_ordinary("".join(document))
        reference_hash.update(array.array("l", ids).tobytes())
        n_reference += len(ids)
    assert n_ours == n_reference
    assert ours_hash.hexdigest() == reference_hash.hexdigest()


# ---------------------------------------------------------------- the tie-break rule
def test_tie_break_rules_on_a_hand_checked_corpus():
    # "to be or not to be": (" ","b"), ("b","e") and ("t","o") tie at two occurrences each.
    # Smallest ids: space (32) < b (98) < t (116). Greatest bytes: "t" > "b" > " ".
    smallest = [(b" ", b"b"), (b"t", b"o"), (b" b", b"e"), (b" ", b"n")]
    greatest = [(b"t", b"o"), (b"b", b"e"), (b" ", b"be"), (b"o", b"t")]
    for train in (T.train_bpe, T.train_bpe_naive):
        assert train("to be or not to be", 260) == smallest
        assert train("to be or not to be", 260, tie_break="smallest_ids") == smallest
        assert train("to be or not to be", 260, tie_break="greatest_bytes") == greatest
        with pytest.raises(ValueError, match="tie_break"):
            train("to be", 258, tie_break="largest")


    tok = T.BPETokenizer.train("to be or not to be", 261, tie_break="greatest_bytes")
    assert tok.encode("to be") == [256, 258]


def test_tie_break_rules_fast_equals_naive_on_corpus_sample(corpus):
    sample = corpus[:15_000] + T.EOT + corpus[-8_000:]
    for rule in T.TIE_BREAKS:
        assert T.train_bpe(sample, 256 + 100, tie_break=rule) == \
            T.train_bpe_naive(sample, 256 + 100, tie_break=rule)
    # the rules agree until the first tie, then part ways
    a = T.train_bpe(sample, 256 + 100)
    b = T.train_bpe(sample, 256 + 100, tie_break="greatest_bytes")
    assert a[:5] == b[:5] and a != b


def test_descending_key_reverses_byte_order():
    tokens = [b"", b"a", b"ab", b"b", b"\xff", b"\x00", b"a\x00"]
    assert sorted(tokens, key=T.descending) == sorted(tokens, reverse=True)
