"""Tests of chapter 7's judge (llmscratch/judge.py) beyond the notebook's own checks.

The parser on adversarial replies, the client against local stand-in servers (closed port, silent
server, HTTP errors) and against the real llama.cpp server on loopback, and the agreement metrics
against values computed by hand. Every server here listens on 127.0.0.1 only.
"""
import http.server
import json
import math
import socket
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmscratch import course
from llmscratch.classify import bootstrap_ci
from llmscratch.judge import (
    SCORE_SCHEMA, SCORE_TOKENS, Invalid, JudgeClient, JudgeHTTPError, JudgeServerError, JudgeTimeout, JudgeUnavailable,
    LlamaCppServer, SMOLLM2_FILE, TokenLogprob, Verdict, agreement, check_records,
    cohen_kappa, label_matrix, is_invalid, parse_choice, parse_verdict, position_bias,
    preferred_side, sample_records, score_messages, weighted_score,
)
from llmscratch.judge import (
    NEAR_MISS_RULES, REFERENCE_RUBRIC, calibration_items, debiased_pick,
    kappa_interval, near_miss, reference_messages, verdict_probability,
)
from llmscratch.judge import (
    SAME_SCHEMA, SCORE_ONLY_SCHEMA, SCORE_ONLY_TOKENS, choice_probability,
    compare_messages,
)
from llmscratch.instruct import EXACT_FAMILIES, correctness_rule, is_correct

# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize("text, why", [
    ("", "empty reply"),
    ("  \n\t ", "empty reply"),
    (None, "empty reply"),
    ("The answer deserves a 4.", "no JSON object"),
    ("[4, 'reason']", "no JSON object"),
    ('{"score": 4, "reason": "goo', "malformed or truncated JSON"),
    ('{"score": 4,', "malformed or truncated JSON"),
    ('{"score"', "malformed or truncated JSON"),
    ("{", "malformed or truncated JSON"),
    ("{'score': 4, 'reason': 'single quotes'}", "malformed or truncated JSON"),
    ('{"score": 6, "reason": "too high"}', "score out of range 1-5"),
    ('{"score": 0, "reason": "too low"}', "score out of range 1-5"),
    ('{"score": -3, "reason": "negative"}', "score out of range 1-5"),
    ('{"score": 100}', "score out of range 1-5"),
    ('{"score": "4", "reason": "a string"}', "score missing or not an integer"),
    ('{"score": 4.0, "reason": "a float"}', "score missing or not an integer"),
    ('{"score": 3.5, "reason": "a half"}', "score missing or not an integer"),
    ('{"score": true, "reason": "a bool"}', "score missing or not an integer"),
    ('{"score": null, "reason": "null"}', "score missing or not an integer"),
    ('{"score": [4], "reason": "a list"}', "score missing or not an integer"),
    ('{"reason": "no score at all"}', "score missing or not an integer"),
    ('{"grade": 4}', "score missing or not an integer"),
    ('{"score": 4, "reason": 17}', "reason is not text"),
    ('{"score": 4, "reason": {"nested": "object"}}', "reason is not text"),
])
def test_parse_verdict_invalid(text, why):
    outcome = parse_verdict(text)
    assert isinstance(outcome, Invalid) and outcome.why == why


@pytest.mark.parametrize("text, expected", [
    ('{"score": 4, "reason": "good"}', Verdict(4, "good")),
    ('{"score":1,"reason":""}', Verdict(1, "")),
    ('{\n  "score": 5,\n  "reason": "spread over lines"\n}', Verdict(5, "spread over lines")),
    ('Here you go: {"score": 2, "reason": "wrong"} I hope this helps!', Verdict(2, "wrong")),
    ('```json\n{"score": 3, "reason": "fenced"}\n```', Verdict(3, "fenced")),
    ('{"score": 5}', Verdict(5, "")),
    ('{"reason": "order reversed", "score": 2, "extra": [1, 2]}', Verdict(2, "order reversed")),
    ('a {broken one} then {"score": 4, "reason": "second object"}', Verdict(4, "second object")),
    ('{"score": 2, "reason": "first"} {"score": 5, "reason": "second"}', Verdict(2, "first")),
    ('{"score": 3, "reason": "unicode: caf\\u00e9 \u2713"}', Verdict(3, "unicode: café ✓")),
])
def test_parse_verdict_valid(text, expected):
    assert parse_verdict(text) == expected


def test_every_proper_prefix_of_a_reply_is_invalid():
    reply = '{"score": 4, "reason": "one extra word"}'
    for cut in range(len(reply)):
        assert is_invalid(parse_verdict(reply[:cut])), reply[:cut]
    assert parse_verdict(reply) == Verdict(4, "one extra word")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet='{}[]":,0123456789 scorean\n\\')))
def test_parsers_never_raise(text):
    outcome = parse_verdict(text)
    assert isinstance(outcome, (Verdict, Invalid))
    if isinstance(outcome, Verdict):
        assert 1 <= outcome.score <= 5 and isinstance(outcome.reason, str)
    choice = parse_choice(text, "winner", ("A", "B", "tie"))
    assert choice in ("A", "B", "tie") or is_invalid(choice)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-10, max_value=10), st.text(max_size=30), st.text(max_size=20), st.text(max_size=20))
def test_parse_verdict_roundtrip(score, reason, before, after):
    text = before.replace("{", "(") + json.dumps({"score": score, "reason": reason}) + after
    outcome = parse_verdict(text)
    if 1 <= score <= 5:
        assert outcome == Verdict(score, reason)
    else:
        assert outcome == Invalid("score out of range 1-5", text)


def test_parse_choice():
    options = ("correct", "incorrect")
    assert parse_choice('{"verdict": "incorrect"}', "verdict", options) == "incorrect"
    assert parse_choice('{"verdict": "Correct"}', "verdict", options).why.startswith("verdict missing")
    assert parse_choice('{"winner": "A"}', "verdict", options).why.startswith("verdict missing")
    assert parse_choice("", "verdict", options) == Invalid("empty reply", "")
    assert parse_choice('{"verdict": "correct"', "verdict", options).why == "malformed or truncated JSON"


# ---------------------------------------------------------------- log-prob weighting


def tokens_with(alternatives, pieces=('{"', "score", '":', " ", "4", ', "reason": "ok"}')):
    return [TokenLogprob(p, -0.05, {a: math.log(q) for a, q in alternatives.items()} if p == "4" else {p: -0.05})
            for p in pieces]


def test_weighted_score_by_hand():
    assert weighted_score(tokens_with({"4": 1.0})) == pytest.approx(4.0)
    assert weighted_score(tokens_with({"1": 0.2, "5": 0.2})) == pytest.approx(3.0)
    assert weighted_score(tokens_with({"2": 0.1, "3": 0.3, "4": 0.6})) == pytest.approx(0.2 + 0.9 + 2.4)
    assert weighted_score(tokens_with({"4": 0.3, " 4": 0.3, "2": 0.2, "The": 0.2})) == pytest.approx((4 * 0.6 + 2 * 0.2) / 0.8)
    assert weighted_score(tokens_with({"7": 0.5, "4": 0.5})) == pytest.approx(4.0)  # 7 is not a score


def test_weighted_score_finds_a_digit_inside_a_longer_token():
    pieces = ['{"score": ', "3", '}']  # the digit token right after a token holding the key
    tokens = [TokenLogprob(p, -0.1, {"3": math.log(0.5), "5": math.log(0.5)} if p == "3" else {}) for p in pieces]
    assert weighted_score(tokens) == pytest.approx(4.0)


def test_weighted_score_invalid():
    assert weighted_score(None).why == "no log-probs in the reply"
    assert weighted_score([]).why == "no log-probs in the reply"
    assert weighted_score(tokens_with({"4": 0.5}, pieces=("no", " score", " here"))).why == "no score digit in the reply"
    assert weighted_score(tokens_with({"x": 0.5, "y": 0.5})).why == "no score digit among the top log-probs"


# ---------------------------------------------------------------- metrics


def test_confusion_matrix_and_kappa_by_hand():
    # 50 items: 20 both-no, 5 truth-no/judge-yes, 10 truth-yes/judge-no, 15 both-yes.
    # p_o = 35/50 = 0.7; p_e = (25*30 + 25*20)/2500 = 0.5; kappa = 0.2/0.5 = 0.4
    truth = [False] * 25 + [True] * 25
    judged = [False] * 20 + [True] * 5 + [False] * 10 + [True] * 15
    assert label_matrix(truth, judged).tolist() == [[20, 5], [10, 15]]
    assert cohen_kappa(truth, judged) == pytest.approx(0.4, abs=1e-12)


def test_kappa_three_labels_by_hand():
    # rows truth a,b,c; columns judge a,b,c
    # [[10, 2, 3], [1, 8, 1], [4, 0, 11]]: n=40, p_o = 29/40 = 0.725
    # row sums 15, 10, 15; column sums 15, 10, 15; p_e = (225 + 100 + 225)/1600 = 0.34375
    # kappa = (0.725 - 0.34375) / (1 - 0.34375) = 0.380952...
    matrix = [[10, 2, 3], [1, 8, 1], [4, 0, 11]]
    labels = ("a", "b", "c")
    truth, judged = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            truth += [labels[i]] * count
            judged += [labels[j]] * count
    assert label_matrix(truth, judged, labels).tolist() == matrix
    assert cohen_kappa(truth, judged, labels) == pytest.approx((0.725 - 0.34375) / (1 - 0.34375), abs=1e-12)


def test_kappa_edge_cases():
    assert cohen_kappa([True, False, True], [True, False, True]) == 1.0
    assert cohen_kappa([True, False], [False, True]) == -1.0
    assert cohen_kappa([True] * 3 + [False] * 7, [False] * 10) == 0.0  # a constant judge
    assert math.isnan(cohen_kappa([True] * 4, [True] * 4))  # no variation: 0/0
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="true labels"):
        label_matrix([True], [])
    with pytest.raises(ValueError, match="not one of"):
        label_matrix(["yes"], [True])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_kappa_matches_formula(pairs):
    truth, judged = [t for t, _ in pairs], [j for _, j in pairs]
    m = label_matrix(truth, judged)
    assert m.sum() == len(pairs)
    n = len(pairs)
    p_o = sum(t == j for t, j in pairs) / n
    p_true, q_true = sum(truth) / n, sum(judged) / n
    p_e = p_true * q_true + (1 - p_true) * (1 - q_true)
    kappa = cohen_kappa(truth, judged)
    if abs(1 - p_e) < 1e-12:
        assert math.isnan(kappa)
    else:
        assert kappa == pytest.approx((p_o - p_e) / (1 - p_e), abs=1e-9)
        assert -1 - 1e-9 <= kappa <= 1 + 1e-9


def test_agreement_counts_invalid_as_misses():
    truth = [True, True, False, False, True]
    judged = [True, Invalid("timeout"), False, True, Invalid("empty reply")]
    report = agreement(truth, judged)
    assert report["n"] == 5 and report["invalid"] == 2 and report["invalid_by_truth"] == [0, 2]
    assert report["matrix"].tolist() == [[1, 1], [0, 1]]
    assert report["accuracy"] == pytest.approx(2 / 5)
    # kappa on the three valid pairs: p_o = 2/3, p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9
    assert report["kappa"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    with pytest.raises(ValueError):
        agreement([True], [True, False])


def test_bootstrap_ci():
    values = np.random.default_rng(1).normal(2.5, 0.8, size=500)
    low, high = bootstrap_ci(values, n_boot=4000)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.02)
    assert high == pytest.approx(values.mean() + half, abs=0.02)
    assert bootstrap_ci([3, 3, 3, 3]) == (3.0, 3.0)
    assert bootstrap_ci([1, 2, 5], seed=7) == bootstrap_ci([1, 2, 5], seed=7)
    narrow, wide = bootstrap_ci(values, level=0.5), bootstrap_ci(values, level=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert bootstrap_ci([0, 1, 1, 1], statistic=np.median)[1] == 1.0
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_position_bias_summary():
    assert preferred_side("B", "base") == "tuned" and preferred_side("A", "tuned") == "tuned"
    summary = position_bias(["A", "A", "B", Invalid("timeout")], ["A", "B", "A", "A"])
    assert summary["pairs"] == 4 and summary["complete"] == 3 and summary["invalid"] == 1
    # pair 1: base, then tuned -> inconsistent; pair 2: base, base -> consistent; pair 3: tuned, tuned -> consistent
    assert summary["consistent"] == 2
    assert summary["first_slot_share"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        position_bias(["A"], [])


def test_debiased_pick_needs_both_orders():
    assert debiased_pick("B", "A") == "tuned" and debiased_pick("A", "B") == "base"
    assert debiased_pick("A", "A") == "tie" and debiased_pick("B", "B") == "tie"
    assert debiased_pick("tie", "tie") == "tie"
    assert debiased_pick(Invalid("timeout"), "A") == "tie"
    assert debiased_pick("A", "B", sides=("right", "miss")) == "right"


def test_kappa_interval():
    truth = [False] * 25 + [True] * 25
    judged = [False] * 20 + [True] * 5 + [False] * 10 + [True] * 15
    low, high = kappa_interval(truth, judged)
    assert low < 0.4 < high
    assert kappa_interval(truth, truth) == (1.0, 1.0)
    # invalid verdicts are left out, as in cohen_kappa
    assert kappa_interval(truth + [True], judged + [Invalid("x")]) == (low, high)
    assert all(math.isnan(x) for x in kappa_interval([True], [Invalid("x")]))


def test_verdict_probability_by_hand():
    def tokens(pieces, at, alternatives):
        return [TokenLogprob(p, -0.1, {a: math.log(q) for a, q in alternatives.items()} if i == at else {})
                for i, p in enumerate(pieces)]
    own = ['{"', "verdict", '":"', "in", "correct", '"}']
    assert verdict_probability(tokens(own, 3, {"in": 0.6, "correct": 0.2, "c": 0.2})) == pytest.approx(0.4)
    assert verdict_probability(tokens(own, 3, {"x": 1.0})).why == "no verdict word among the top log-probs"
    assert verdict_probability([]).why == "no log-probs in the reply"


def test_yes_no_probability_and_compare_wording():
    def tokens(pieces, at, alternatives):
        return [TokenLogprob(p, -0.1, {a: math.log(q) for a, q in alternatives.items()} if i == at else {})
                for i, p in enumerate(pieces)]
    reply = ['{"', "same", '":', ' "', "yes", '"}']
    p = choice_probability(tokens(reply, 4, {"yes": 0.3, "no": 0.6, "n": 0.05, "x": 0.05}), "same", ("yes", "no"))
    assert p == pytest.approx(0.3 / 0.95)
    assert choice_probability(tokens(reply, 4, {"x": 1.0}), "same", ("yes", "no")).why == \
        "no same word among the top log-probs"
    assert SAME_SCHEMA["properties"]["same"]["enum"] == ["yes", "no"]
    record = {"id": "r", "family": "uppercase", "instruction": "Shout it.", "input": "hi there",
              "reference": "HI THERE"}
    shot = {**record, "reference": "DOG"}
    messages = compare_messages(record, "hi there I hope this helps.", [(shot, "DOG", True), (shot, "dog", False)])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [json.loads(m["content"]) for m in messages[2:5:2]] == [{"same": "yes"}, {"same": "no"}]
    item = messages[-1]["content"]
    assert 'Answer to check: "hi there I hope this helps."' in item  # quoted: the extra sentence shows
    assert 'Reference answer: "HI THERE"' in item and "case must match" in item
    assert "Shout it." not in item  # the rule and the reference decide, not the instruction
    # the score alone: the same opening as the full schema, and a limit that fits it
    assert SCORE_ONLY_SCHEMA["properties"] == {"score": SCORE_SCHEMA["properties"]["score"]}
    assert parse_verdict('{"score": 4}') == Verdict(4, "")
    assert SCORE_ONLY_TOKENS >= len('{"score": 5}')


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["dog", "cat", "Sun", "12", "0", "Hamlet", "positive", "RED"]),
                min_size=1, max_size=4), st.sampled_from(NEAR_MISS_RULES), st.integers(0, 50),
       st.sampled_from(EXACT_FAMILIES))
def test_near_misses_are_wrong_by_exact_match(words, rule, seed, family):
    import random
    reference = " ".join(words)
    variant = near_miss(reference, rule, random.Random(seed), family)
    if variant is not None:
        assert not is_correct({"exact": True, "family": family, "output": reference}, variant)
    if rule == "wrong case" and family != "uppercase":
        assert variant is None  # a flipped case is right where case does not count


def test_wrong_case_is_a_near_miss_only_where_case_counts():
    import random
    assert near_miss("RED SEA", "wrong case", random.Random(0), "uppercase") == "red sea"
    assert near_miss("Red Sea", "wrong case", random.Random(0), "sort_words") is None


def test_calibration_items_are_balanced_and_known():
    examples = [{"id": f"val-{f}-{i}", "family": f, "exact": True, "instruction": "Do it.",
                 "input": "x", "output": out}
                for f, out in (("count_words", "7"), ("reverse_words", "sun dog cat"),
                               ("uppercase", "RED SEA"), ("sentiment", "positive"))
                for i in range(3)]
    items = calibration_items(examples, 8, seed=0)
    assert len(items) == 16 and sum(c["truth"] for c in items) == 8
    assert items == calibration_items(examples, 8, seed=0)
    for c in items:
        truth = {"exact": True, "family": c["family"], "output": c["reference"]}
        assert is_correct(truth, c["answer"]) == c["truth"]
        if c["made_by"] == "wrong case":
            assert c["family"] == "uppercase"
    assert {c["made_by"] for c in items if not c["truth"]} == set(NEAR_MISS_RULES)
    with pytest.raises(ValueError, match="ask for fewer"):
        calibration_items(examples, 20)


@pytest.mark.parametrize("family", EXACT_FAMILIES)
def test_requests_state_chapter_6s_rule_of_the_family(family):
    record = {"family": family, "instruction": "Do it.", "input": "", "reference": "A b"}
    messages = reference_messages(record, "a b")
    assert messages[0]["content"].startswith(REFERENCE_RUBRIC)
    assert f"Rule: {correctness_rule(family)}" in messages[1]["content"]
    assert f"Rule: {correctness_rule(family)}" in score_messages(record, "a b")[1]["content"]
    truth = {"exact": True, "family": family, "output": "A b"}
    assert is_correct(truth, " A  b\n") and not is_correct(truth, "A b.")
    assert is_correct(truth, "a b") == (family != "uppercase")
    assert ("does not matter" in correctness_rule(family)) == (family != "uppercase")


def test_a_record_with_another_rule_is_refused():
    record = {"id": "r", "family": "uppercase", "instruction": "Do it.", "input": "",
              "reference": "A", "rule": correctness_rule("sentiment")}
    with pytest.raises(ValueError, match="06-instructions"):
        reference_messages(record, "a")
    assert reference_messages({**record, "rule": correctness_rule("uppercase")}, "a")


# ---------------------------------------------------------------- records


def make_records(n_per_family=3):
    records = []
    for family in ("first_word", "count_words", "arithmetic"):
        for i in range(n_per_family):
            records.append({"id": f"test-{family}-{i}", "family": family, "exact": True, "instruction": "Do it.",
                            "input": "a b", "reference": "a", "base": "b", "tuned": "a",
                            "base_correct": False, "tuned_correct": True})
    for i in range(2):
        records.append({"id": f"test-open-{i}", "family": "open", "exact": False, "instruction": "Write.",
                        "input": "", "reference": "A line.", "base": "x", "tuned": "y",
                        "base_correct": None, "tuned_correct": None})
    return records


def test_check_records_explains_problems():
    records = make_records()
    assert check_records(records) is records
    with pytest.raises(ValueError, match="06-instructions"):
        check_records([])
    broken = {k: v for k, v in records[0].items() if k != "tuned"}
    with pytest.raises(ValueError, match="lacks.*tuned"):
        check_records([broken])
    with pytest.raises(ValueError, match="true or false"):
        check_records([{**records[0], "tuned_correct": None}])
    with pytest.raises(ValueError, match="must be null"):
        check_records([{**records[-1], "base_correct": True}])


def test_sample_records_is_balanced_and_reproducible():
    records = make_records(n_per_family=4)
    sample = sample_records(records, n_exact=5, n_open=1, seed=3)
    exact = [r for r in sample if r["exact"]]
    assert len(exact) == 5 and len(sample) == 6 and not sample[-1]["exact"]
    assert sorted(sum(r["family"] == f for r in exact) for f in ("first_word", "count_words", "arithmetic")) == [1, 2, 2]
    assert sample == sample_records(records, n_exact=5, n_open=1, seed=3)
    assert len(sample_records(records)) == len(records)
    assert records == make_records(n_per_family=4)  # the input is not changed


def test_score_messages_shape():
    record = make_records()[0]
    messages = score_messages(record, "x" * 1000)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Input: a b" in messages[1]["content"] and messages[1]["content"].endswith("…")
    assert score_messages(make_records()[-1], "y")[1]["content"].count("Input:") == 0


# ---------------------------------------------------------------- the client against stand-in servers


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_client_closed_port_gives_a_clear_error():
    port = free_port()
    client = JudgeClient(f"http://127.0.0.1:{port}/v1", "any", timeout=2, retries=2, backoff=0.05)
    started = time.perf_counter()
    with pytest.raises(JudgeUnavailable) as error:
        client.chat([{"role": "user", "content": "hi"}])
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert f"http://127.0.0.1:{port}/v1" in message and "after 3 tries" in message and "Start one" in message


def test_client_times_out_on_a_silent_server():
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = JudgeClient(f"http://127.0.0.1:{port}/v1", "any", timeout=0.5, retries=3)
        started = time.perf_counter()
        with pytest.raises(JudgeTimeout, match="within 0.5 s"):
            client.chat([{"role": "user", "content": "hi"}])
        assert time.perf_counter() - started < 3  # a timeout is not retried


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Answers POSTs with the next (status, body) of the server's script, and records requests."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        status, payload = self.server.script.pop(0)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.script, server.requests = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


OK_REPLY = {"choices": [{"message": {"content": '{"score": 3, "reason": "fine"}'}, "finish_reason": "stop",
                         "logprobs": {"content": [
                             {"token": '{"score": ', "logprob": -0.1, "top_logprobs": []},
                             {"token": "3", "logprob": -0.7, "top_logprobs": [
                                 {"token": "3", "logprob": math.log(0.5)}, {"token": "4", "logprob": math.log(0.5)}]},
                             {"token": ', "reason": "fine"}', "logprob": -0.2, "top_logprobs": []}]}}]}


def test_client_request_shape_and_logprobs(scripted_server):
    scripted_server.script.append((200, OK_REPLY))
    client = JudgeClient(f"http://127.0.0.1:{scripted_server.server_port}/v1/", "judge-model", timeout=5)
    reply = client.chat([{"role": "user", "content": "grade"}], schema=SCORE_SCHEMA, max_tokens=12, top_logprobs=5)
    path, body = scripted_server.requests[0]
    assert path == "/v1/chat/completions" and body["model"] == "judge-model" and body["max_tokens"] == 12
    assert body["response_format"]["json_schema"]["schema"] == SCORE_SCHEMA
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["temperature"] == 0.0
    assert parse_verdict(reply.text) == Verdict(3, "fine") and reply.finish_reason == "stop"
    assert weighted_score(reply.tokens) == pytest.approx(3.5)


def test_client_retries_503_and_reports_other_errors(scripted_server):
    scripted_server.script += [(503, {"error": "loading model"}), (200, OK_REPLY)]
    client = JudgeClient(f"http://127.0.0.1:{scripted_server.server_port}/v1", "m", timeout=5, backoff=0.01)
    assert client.chat([{"role": "user", "content": "x"}]).text.startswith('{"score": 3')
    assert len(scripted_server.requests) == 2 and "logprobs" not in scripted_server.requests[0][1]
    scripted_server.script.append((400, {"error": "model 'm' not found"}))
    with pytest.raises(JudgeHTTPError, match="HTTP 400.*not found") as error:
        client.chat([{"role": "user", "content": "x"}])
    assert error.value.status == 400 and len(scripted_server.requests) == 3  # no retry on a 400


# ---------------------------------------------------------------- the real llama.cpp server


def test_server_refuses_a_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="make fetch"):
        LlamaCppServer(tmp_path / "absent.gguf").start()


def test_live_llama_cpp_server_start_request_stop():
    """Start the real server on loopback, make one structured request, stop it: well under 20 s."""
    started = time.perf_counter()
    model = course.asset_path("smollm2", SMOLLM2_FILE)
    with LlamaCppServer(model, n_threads=1) as server:
        assert server.running and server.url.startswith("http://127.0.0.1:")
        client = JudgeClient(server.base_url, server.alias, timeout=30)
        assert client.models() == [server.alias]
        record = make_records()[0]
        reply = client.chat(score_messages(record, record["tuned"]), schema=SCORE_SCHEMA, max_tokens=SCORE_TOKENS, top_logprobs=10)
        verdict = parse_verdict(reply.text)
        assert isinstance(verdict, (Verdict, Invalid))
        if reply.finish_reason == "stop":  # the schema holds unless the token limit cut the reply
            assert isinstance(verdict, Verdict), reply.text
        assert reply.tokens and all(t.logprob <= 1e-6 for t in reply.tokens)
        weighted = weighted_score(reply.tokens)
        assert is_invalid(weighted) or 1.0 <= weighted <= 5.0
        port = server.port
        with pytest.raises(JudgeServerError, match="in use"):  # a second server cannot take the same port
            LlamaCppServer(model, port=port, n_threads=1).start()
    assert not server.running
    with pytest.raises(JudgeUnavailable):
        JudgeClient(f"http://127.0.0.1:{port}/v1", "any", timeout=2, retries=0).models()
    server.stop()  # stopping twice is harmless
    assert time.perf_counter() - started < 20


# ---------------------------------------------------------- calls side by side


def test_judge_all_gives_each_client_a_block_and_keeps_the_order():
    from llmscratch.judge import judge_all
    seen = {"a": [], "b": []}

    def call(client, item):
        seen[client].append(item)
        time.sleep(0.001 * (item % 3))  # uneven calls must not reorder results
        return item * 10

    assert judge_all(call, range(7), ["a", "b"]) == [i * 10 for i in range(7)]
    # each client gets a fixed block of neighbours, in order: runs repeat
    assert seen == {"a": [0, 1, 2, 3], "b": [4, 5, 6]}
    assert judge_all(call, [], ["a", "b"]) == []
    assert judge_all(call, [3], ["a"]) == [30]


def test_judge_all_raises_a_workers_error():
    from llmscratch.judge import judge_all

    def call(client, item):
        if item == 2:
            raise JudgeUnavailable("gone")
        return item

    with pytest.raises(JudgeUnavailable, match="gone"):
        judge_all(call, range(4), ["a", "b"])
