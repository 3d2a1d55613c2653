"""SmolLM2-135M in the course's own code (chapter 3, section 3.11), proven against llama.cpp.

The chapter shows a small sample; these tests check the claims at size: the tokenizer on the
whole corpus, next-token agreement on at least 2,000 positions of text, greedy chat answers, and
the same model served by llama.cpp from a float32 copy of the weights, where llama.cpp's rounding
of activations to 8 bits is gone and the two must agree almost exactly.

Tolerances are measured, not chosen: llama.cpp multiplies the 4-bit weights with activations
rounded to 8-bit blocks, so our float32 model may differ from it by as much as that rounding moves
our own model (`rounding_shift` below), times two for the roundings we do not imitate (fp16 KV
cache, fp16 block sums).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from llmscratch import course
from llmscratch.model import (
    SMOLLM2_FILE, CheckpointMismatchError, LlamaConfig, LlamaCppServer, LlamaModel,
    apply_chat_template, compare_next_tokens, dequantize, generate, gguf_tokenizer,
    llama_config_from_gguf, llama_cpp_top_tokens, load_gguf_weights, load_smollm2, read_gguf,
    round_to_8_bits, unpermute_rope_rows)
from llmscratch.tokenizer import corpus_documents, vader_snippets

N_POSITIONS = 2000
N_SPEED = 16  # tokens to time; the figure is loosely bounded, a short run will do
THREADS = torch.get_num_threads()


@pytest.fixture(scope="module")
def path():
    return course.asset_path("smollm2", SMOLLM2_FILE)


@pytest.fixture(scope="module")
def gguf(path):
    return read_gguf(path)


@pytest.fixture(scope="module")
def smol():
    model, tokenizer = load_smollm2()  # the two lines a later chapter needs
    return model, tokenizer


@pytest.fixture(scope="module")
def server(path):
    with LlamaCppServer(path, n_threads=THREADS) as running:
        yield running


@pytest.fixture(scope="module")
def comparison(smol, server):
    """Next-token comparison on N_POSITIONS positions of chapter 5's movie reviews."""
    model, tokenizer = smol
    ids = tokenizer.encode("\n".join(vader_snippets("movieReviewSnippets")[:3000]))
    ids = ids[:N_POSITIONS + 1]
    assert len(ids) == N_POSITIONS + 1
    tops = llama_cpp_top_tokens(server, ids)
    context = torch.tensor([ids[:-1]])
    with torch.no_grad():
        plain = torch.log_softmax(model(context), dim=-1)[0]
    # one forward pass of 2,000 positions serves both comparisons
    agree, gap, margin = compare_next_tokens(model, ids, tops, logp=plain)
    with torch.no_grad():
        hooks = [m.register_forward_pre_hook(lambda _, a: (round_to_8_bits(a[0]),))
                 for m in model.modules() if isinstance(m, torch.nn.Linear)]
        try:
            rounded = torch.log_softmax(model(context), dim=-1)[0]
        finally:
            for h in hooks:
                h.remove()
    best = plain.argmax(dim=-1, keepdim=True)
    self_agree = rounded.argmax(dim=-1) == best[:, 0]
    rounding_shift = (rounded.gather(1, best) - plain.gather(1, best)).abs().mean().item()
    return dict(ids=ids, tops=tops, agree=agree, gap=gap, margin=margin,
                self_agree=self_agree, rounding_shift=rounding_shift)


def test_config_from_metadata(gguf):
    metadata, _ = gguf
    cfg = llama_config_from_gguf(metadata)
    assert (cfg.n_layers, cfg.emb_dim, cfg.n_heads, cfg.n_kv_heads, cfg.hidden_dim) == (
        30, 576, 9, 3, 1536)
    assert cfg.vocab_size == 49152 and cfg.rope_base == 100000.0 and cfg.tie_weights
    with pytest.raises(ValueError, match="'qwen2' model"):
        llama_config_from_gguf({**metadata, "general.architecture": "qwen2"})


@pytest.mark.parametrize("wrong, expected", [
    (dict(n_layers=31), "no tensor ['blk.30."),
    (dict(emb_dim=512, n_heads=8, n_kv_heads=4), "'token_embd.weight' has shape (49152, 576)"),
    (dict(hidden_dim=2048), "'blk.0.ffn_gate.weight' has shape (1536, 576)"),
    (dict(tie_weights=False), "no tensor ['output.weight']"),
])
def test_a_file_that_does_not_fit_is_refused(gguf, wrong, expected):
    metadata, tensors = gguf
    with torch.device("meta"):
        model = LlamaModel(LlamaConfig(**{**llama_config_from_gguf(metadata).to_dict(),
                                          **wrong}))
    with pytest.raises(CheckpointMismatchError) as error:
        load_gguf_weights(model, tensors)
    assert expected in str(error.value) and "the file has 30 blocks" in str(error.value)


def test_unpermute_is_the_inverse_of_llama_cpps_permutation():
    # llama.cpp's converter (convert_hf_to_gguf.py, `permute`), written out
    def permute(w, n_head):
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(
            1, 2).reshape(w.shape)
    w = np.random.default_rng(0).standard_normal((3 * 64, 10)).astype(np.float32)
    assert np.array_equal(unpermute_rope_rows(permute(w, 3), 3), w)
    assert not np.array_equal(permute(w, 3), w)


def test_q4_1_blocks_decode_by_hand(gguf):
    _, tensors = gguf
    tensor = tensors["blk.7.ffn_up.weight"]
    raw = tensor.data[5]  # row 5: 18 blocks of 20 bytes
    values = dequantize(tensor)[5]
    for b in range(len(raw) // 20):
        block = raw[20 * b: 20 * b + 20]
        d = block[0:2].view(np.float16).astype(np.float32)[0]
        m = block[2:4].view(np.float16).astype(np.float32)[0]
        codes = np.concatenate([block[4:] & 0x0F, block[4:] >> 4])
        assert np.array_equal(d * codes + m, values[32 * b: 32 * b + 32])


def test_tokenizer_equals_llama_cpp_on_the_whole_corpus(smol, server):
    _, tokenizer = smol
    texts = [text for _name, text in corpus_documents()]
    texts += vader_snippets("movieReviewSnippets")[:2000]
    texts += ["def f(x):\n\treturn {'a': [1, 2, 3]}  # ok\n", "😀🎉👍🏽 ❤️ 🇺🇳", "中文，日本語、한국어",
              "x  \n\n  1 22 333", "<|im_start|>assistant\n<|im_end|>", "\x04\x06 control", ""]
    n_tokens = 0
    for text in texts:
        ours = tokenizer.encode(text, allowed_special="all")
        theirs = server.post("/tokenize", {"content": text}, timeout=600)["tokens"]
        assert ours == theirs, text[:80]
        n_tokens += len(ours)
    print(f"tokenizer: {len(texts)} texts, {n_tokens:,} tokens identical to llama.cpp's")
    assert n_tokens > 1_000_000


def test_chat_template_ids(gguf, smol, server):
    metadata, _ = gguf
    _, tokenizer = smol
    chat = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"}]
    for messages in (chat, chat[1:]):
        text = apply_chat_template(metadata, messages)
        assert text == server.post("/apply-template", {"messages": messages})["prompt"]
        ids = tokenizer.encode(text, allowed_special="all")
        assert ids == server.post("/tokenize", {"content": text})["tokens"]
        assert text.endswith("<|im_start|>assistant\n")


def test_next_tokens_agree_with_llama_cpp_on_2000_positions(comparison):
    c = comparison
    agree, gap, margin = c["agree"], c["gap"], c["margin"]
    tolerance = 2 * c["rounding_shift"]
    clear = margin > 0.5
    p_cpp, p_self = agree.float().mean().item(), c["self_agree"].float().mean().item()
    se = math.sqrt((p_cpp * (1 - p_cpp) + p_self * (1 - p_self)) / len(agree))
    print(f"{len(agree)} positions: top-1 equal {p_cpp:.2%} (clear choices "
          f"{agree[clear].float().mean():.2%} of {int(clear.sum())}); mean |Δ log p| "
          f"{gap.mean():.4f}, tolerance {tolerance:.4f}; our own 8-bit rounding: top-1 "
          f"{p_self:.2%}, shift {c['rounding_shift']:.4f}")
    assert len(agree) >= 2000
    assert gap.mean() <= tolerance
    assert agree[clear].float().mean() >= 0.99
    assert p_cpp >= p_self - 2 * se
    assert (margin[~agree] < 2 * gap.max()).all()


def test_float32_gguf_served_by_llama_cpp_agrees_almost_exactly(gguf, smol, tmp_path,
                                                                comparison):
    """With float32 weights llama.cpp no longer rounds activations: top-1 must agree on
    at least 99 % of positions and log-probabilities to about 1e-3 (its fp16 KV cache)."""
    import gguf as gg

    metadata, tensors = gguf
    model, _ = smol
    reader = gg.GGUFReader(course.asset_path("smollm2", SMOLLM2_FILE))
    writer = gg.GGUFWriter(tmp_path / "smollm2-f32.gguf", arch="llama")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_file_type(0)  # all float32
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gg.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, dequantize(tensor))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ids = comparison["ids"][:201]  # 200 positions: the float32 file is slow to serve
    with LlamaCppServer(tmp_path / "smollm2-f32.gguf", n_threads=THREADS) as f32:
        tops = llama_cpp_top_tokens(f32, ids)
    agree, gap, _ = compare_next_tokens(model, ids, tops)
    print(f"float32 file, {len(agree)} positions: top-1 equal {agree.float().mean():.2%}, "
          f"mean |Δ log p| {gap.mean():.5f}, largest {gap.max():.4f}")
    assert agree.float().mean() >= 0.99
    assert gap.mean() < 0.01 < comparison["gap"].mean()


CHATS = ["What is the capital of France?", "Write a haiku about the sea.",
         "Give me three tips for learning to code.", "What is 12 + 7?",
         "Translate 'good morning' into Spanish.", "Name three primary colours."]
N_ANSWER = 16  # the chapter's claim: greedy answers agree for sixteen tokens


def test_greedy_chat_answers(gguf, smol, server, comparison):
    metadata, _ = gguf
    model, tokenizer = smol
    im_end = tokenizer.special_tokens["<|im_end|>"]
    near_tie = 2 * comparison["gap"].max().item()
    report = []
    for question in CHATS:
        ids = tokenizer.encode(apply_chat_template(
            metadata, [{"role": "user", "content": question}]), allowed_special="all")
        ours = generate(model, torch.tensor([ids]), N_ANSWER, eos_id=im_end)
        ours = ours[0, len(ids):].tolist()
        ours = ours[:ours.index(im_end)] if im_end in ours else ours
        reply = server.post("/completion", {"prompt": ids, "n_predict": N_ANSWER,
                                            "temperature": 0,
                                            "n_probs": 2, "return_tokens": True})
        theirs = reply["tokens"]
        same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                    min(len(ours), len(theirs)))
        if same < min(len(ours), len(theirs)):
            top2 = reply["completion_probabilities"][same]["top_logprobs"]
            parting = top2[0]["logprob"] - top2[1]["logprob"]
            report.append(f"{same} (part at a gap of {parting:.3f})")
            assert parting < near_tie, (question, same, parting)
        else:
            report.append(f"{same} (all)")
            assert same >= 16 or len(ours) == len(theirs) < N_ANSWER, (question, same)
    print("identical greedy tokens per chat:", "; ".join(report))


def test_generation_speed_ratio(smol, server, gguf):
    """Ours vs llama.cpp, tokens/s with the KV cache, in one run (a figure, loosely bounded)."""
    metadata, _ = gguf
    model, tokenizer = smol
    ids = tokenizer.encode(apply_chat_template(
        metadata, [{"role": "user", "content": "Tell me a story."}]), allowed_special="all")
    stamps = []

    def choose(logits):
        stamps.append(time.perf_counter())
        return logits.argmax(dim=-1, keepdim=True)

    out = generate(model, torch.tensor([ids]), N_SPEED, choose=choose)
    ours = (N_SPEED - 1) / (stamps[-1] - stamps[0])
    reply = server.post("/completion", {"prompt": ids, "n_predict": N_SPEED, "temperature": 0,
                                        "cache_prompt": False, "ignore_eos": True})
    theirs = reply["timings"]["predicted_per_second"]
    print(f"{THREADS} threads: ours {ours:.1f} tokens/s, llama.cpp {theirs:.1f}, "
          f"ratio {ours / theirs:.2f}")
    assert len(stamps) == N_SPEED and out.shape[1] == len(ids) + N_SPEED
    assert reply["timings"]["predicted_n"] == N_SPEED
