"""Write the fixed fixtures the labs' graded tests compare against (labs/fixtures/).

    python tools/make_lab_fixtures.py           # rewrite every fixture
    python tools/make_lab_fixtures.py --check   # exit 1 if a committed fixture differs

Every expected value comes from a reference the student cannot see from the lab: PyTorch's own
kernels (`F.scaled_dot_product_attention`, `F.layer_norm`, `torch.topk`), Hugging Face's
`GPT2Block`, `tiktoken`, the course's chapter-1 BPE trainer, or a deliberately different
formulation written here (loops where the lab uses matrices). Seeds are fixed, so running the
script twice gives the same files. The labs never import this script.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load, save

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "labs" / "fixtures"
# The GPT-2 pre-tokenisation pattern, as lab 1 states it.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def sonnets(n_chars: int) -> str:
    """The opening of Shakespeare's sonnets (public domain), from the course's verified asset."""
    from llmscratch import course

    path = course.asset_path("shakespeare", "shksprdata/texts/sonnets_gut.txt")
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")[:n_chars]


def as_json(obj) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def as_safetensors(tensors: dict[str, torch.Tensor]) -> bytes:
    return save({k: v.detach().contiguous().clone() for k, v in sorted(tensors.items())})


# ----------------------------------------------------------------------------- lab 1: BPE
def lab1() -> dict[str, bytes]:
    import tiktoken
    from llmscratch.tokenizer import train_bpe_naive

    text, vocab_size = sonnets(6000), 300
    byte_merges = train_bpe_naive(text, vocab_size, special_tokens=())
    # The lab gives merged token i the id 256 + i; that only agrees with the chapter's ids when
    # no two merges make the same bytes, so check it.
    ranks = {bytes([b]): b for b in range(256)}
    merges = []
    for left, right in byte_merges:
        assert left + right not in ranks, "duplicate token: pick another text"
        merges.append([ranks[left], ranks[right]])
        ranks[left + right] = len(ranks)
    reference = tiktoken.Encoding(name="lab1", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                  special_tokens={})
    unseen = ("Thy sweet love remember'd such wealth brings\n"
              "That then I scorn to change my state with kings.\n\n"
              "  Naïve café-goers pay 3,000¥ in 2024 — ok?  \n")
    return {"lab1-bpe.json": as_json({
        "train_text": text, "vocab_size": vocab_size, "merges": merges,
        "unseen_text": unseen, "unseen_ids": reference.encode_ordinary(unseen),
    })}


# ----------------------------------------------------------------------------- lab 2: attention
def lab2() -> dict[str, bytes]:
    g = torch.Generator().manual_seed(2)
    batch, tokens, d_in, d_out, heads = 2, 5, 8, 8, 2
    head_dim = d_out // heads
    x = torch.randn(batch, tokens, d_in, generator=g)
    weights = {
        "W_query.weight": torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in),
        "W_key.weight": torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in),
        "W_value.weight": torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in),
        "out_proj.weight": torch.randn(d_out, d_out, generator=g) / math.sqrt(d_out),
        "out_proj.bias": torch.randn(d_out, generator=g) / 10,
    }

    def heads_of(t):  # [b, t, d_out] -> [b, heads, t, head_dim]
        return t.view(batch, tokens, heads, head_dim).transpose(1, 2)

    q, k, v = (heads_of(x @ weights[f"W_{n}.weight"].T) for n in ("query", "key", "value"))
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    merged = context.transpose(1, 2).reshape(batch, tokens, d_out)
    expected = merged @ weights["out_proj.weight"].T + weights["out_proj.bias"]
    # PyTorch's kernel returns no weights; attending to the identity matrix as values makes the
    # output *be* the weight matrix, still computed by PyTorch's kernel.
    eye = torch.eye(tokens).expand(batch, heads, tokens, tokens)
    attn_weights = F.scaled_dot_product_attention(q, k, eye, is_causal=True)
    tensors = {f"mha.{n}": t for n, t in weights.items()}
    tensors.update({"x": x, "mha_out": expected, "q": q, "k": k, "v": v,
                    "causal_context": context, "causal_weights": attn_weights})
    return {"lab2-attention.safetensors": as_safetensors(tensors)}


# ----------------------------------------------------------------------------- lab 3: block
def lab3() -> dict[str, bytes]:
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    d, heads = 16, 4
    config = GPT2Config(n_embd=d, n_head=heads, n_positions=16, resid_pdrop=0.0, attn_pdrop=0.0,
                        embd_pdrop=0.0, activation_function="gelu_new", layer_norm_epsilon=1e-5)
    config._attn_implementation = "eager"
    torch.manual_seed(3)
    block = GPT2Block(config).eval()
    with torch.no_grad():  # GPT-2 starts LayerNorm at 1 and 0; perturb it so scale/shift matter
        for name, p in block.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if name.startswith("ln_") else 0.05))
    x = torch.randn(2, 6, d)
    # Called on its own, GPT2Block does not mask the future (GPT2Model builds that mask), so
    # pass the causal mask in its additive form: 0 where a query may look, -inf where not.
    causal = torch.full((6, 6), -math.inf).triu(1)[None, None]
    with torch.no_grad():
        out = block(x, attention_mask=causal)
        out = out[0] if isinstance(out, tuple) else out
    s = block.state_dict()
    w_attn, b_attn = s["attn.c_attn.weight"], s["attn.c_attn.bias"]  # Conv1D: [in, out]
    tensors = {
        "block.norm1.scale": s["ln_1.weight"], "block.norm1.shift": s["ln_1.bias"],
        "block.norm2.scale": s["ln_2.weight"], "block.norm2.shift": s["ln_2.bias"],
        "block.att.out_proj.weight": s["attn.c_proj.weight"].T,
        "block.att.out_proj.bias": s["attn.c_proj.bias"],
        "block.ff.layers.0.weight": s["mlp.c_fc.weight"].T, "block.ff.layers.0.bias": s["mlp.c_fc.bias"],
        "block.ff.layers.2.weight": s["mlp.c_proj.weight"].T, "block.ff.layers.2.bias": s["mlp.c_proj.bias"],
        "x": x, "block_out": out,
        # the LayerNorm fixture: PyTorch's F.layer_norm on the same input
        "ln_out": F.layer_norm(x, (d,), s["ln_1.weight"], s["ln_1.bias"], eps=1e-5),
    }
    for i, name in enumerate(("W_query", "W_key", "W_value")):
        tensors[f"block.att.{name}.weight"] = w_attn[:, i * d:(i + 1) * d].T
        tensors[f"block.att.{name}.bias"] = b_attn[i * d:(i + 1) * d]
    return {"lab3-transformer-block.safetensors": as_safetensors(tensors)}


# ----------------------------------------------------------------------------- lab 4: training
def lab_definition(lab: str, name: str):
    """A class or function defined in a lab's given (setup) code, taken from the lab itself so that
    it is written once: lab 4's TinyLM is the model the students train, not a reference answer."""
    import ast

    import jupytext

    notebook = jupytext.read(ROOT / "labs" / f"{lab}.md")
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
                namespace = {"torch": torch, "nn": torch.nn, "F": F}
                exec(compile(ast.Module([node], []), f"labs/{lab}.md", "exec"), namespace)
                return namespace[name]
    raise LookupError(f"labs/{lab}.md defines no {name}")


def reference_step(model, optimizer, inputs, targets, max_norm):
    """One optimiser step, written out here independently of the lab's solution."""
    for p in model.parameters():
        p.grad = None
    logits = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    factor = min(1.0, max_norm / (float(total) + 1e-6))
    for p in model.parameters():
        p.grad.mul_(factor)
    optimizer.step()
    return loss.item()


def lab4() -> dict[str, bytes]:
    text = sonnets(3000)
    chars = sorted(set(text))
    vocab = len(chars)
    torch.manual_seed(4)
    TinyLM = lab_definition("lab4-training", "TinyLM")  # the lab's given model
    model = TinyLM(vocab)
    initial = {f"init.{k}": v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(40)
    inputs = torch.randint(0, vocab, (4, 16), generator=g)
    targets = torch.randint(0, vocab, (4, 16), generator=g)

    adamw = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses = [reference_step(model, adamw, inputs, targets, max_norm=1.0) for _ in range(2)]
    after_adamw = {f"adamw.{k}": v.clone() for k, v in model.state_dict().items()}

    model.load_state_dict({k[len("init."):]: v for k, v in initial.items()})
    sgd = torch.optim.SGD(model.parameters(), lr=0.5)
    clipped_loss = reference_step(model, sgd, inputs, targets, max_norm=0.01)
    after_sgd = {f"sgd.{k}": v.clone() for k, v in model.state_dict().items()}

    # Sampling: probabilities by PyTorch's topk + softmax, draws with a seeded generator.
    logits = torch.randn(4, 50, generator=g) * 3
    probs = {}
    for temperature, top_k in ((1.0, None), (0.7, 5), (1.5, None), (2.0, 10)):
        scaled = logits / temperature
        if top_k is not None:
            kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
            scaled = torch.where(scaled < kth, torch.full_like(scaled, -math.inf), scaled)
        probs[f"probs_T{temperature}_k{top_k}"] = torch.softmax(scaled, dim=-1)
    draw_gen = torch.Generator().manual_seed(7)
    p = probs["probs_T0.7_k5"]
    draws = torch.stack([torch.multinomial(p, 1, generator=draw_gen).squeeze(-1) for _ in range(10)])
    tensors = {**initial, **after_adamw, **after_sgd, **probs, "inputs": inputs, "targets": targets,
               "adamw_losses": torch.tensor(losses), "sgd_loss": torch.tensor([clipped_loss]),
               "logits": logits, "draws_T0.7_k5_seed7": draws}
    return {"lab4-training.safetensors": as_safetensors(tensors),
            "lab4-training.json": as_json({"text": text, "chars": "".join(chars)})}


# ----------------------------------------------------------------------------- lab 5: LoRA
def lab5() -> dict[str, bytes]:
    g = torch.Generator().manual_seed(5)
    in_dim, out_dim, rank, alpha = 6, 5, 3, 4.0
    x = torch.randn(4, in_dim, generator=g)
    # chapter 5's convention: delta W = (alpha / rank) B A, A [rank, in], B [out, rank]
    A = torch.randn(rank, in_dim, generator=g)
    B = torch.randn(out_dim, rank, generator=g)
    W = torch.randn(out_dim, in_dim, generator=g)
    b = torch.randn(out_dim, generator=g)
    # float64 loops over the rank, a different route from the lab's x @ A.T @ B.T
    x64, A64, B64 = x.double(), A.double(), B.double()
    lora = sum(torch.outer(x64 @ A64[r], B64[:, r]) for r in range(rank)) * (alpha / rank)
    base = x64 @ W.double().T + b.double()
    tensors = {"x": x, "A": A, "B": B, "W": W, "b": b, "lora_out": lora.float(),
               "with_lora_out": (base + lora).float(),
               "meta": torch.tensor([in_dim, out_dim, rank, alpha])}
    return {"lab5-lora.safetensors": as_safetensors(tensors)}


# ----------------------------------------------------------------------------- lab 6: collate
def lab6() -> dict[str, bytes]:
    from llmscratch.tokenizer import load_course_encoding

    encoding = load_course_encoding()  # chapter 6's tokenizer: the course vocabulary
    eot = encoding.eot_token
    entries = [
        {"instruction": "Sort the words alphabetically.", "input": "pear apple fig", "output": "apple fig pear"},
        {"instruction": "Name a colour of the sea.", "input": "", "output": "Blue."},
        {"instruction": "Count the letters.", "input": "  two  spaces ", "output": "9"},
        {"instruction": "Reverse the digits.", "input": "1205", "output": "5021"},
    ]

    def prompt_of(e):  # chapter 6's template, written out independently of the lab's solution
        sections = [("Instruction", e["instruction"])] + ([("Input", e["input"])] if e["input"] else [])
        return "".join("### %s: %s\n\n" % pair for pair in sections) + "### Response:"

    prompts = [prompt_of(e) for e in entries]
    sequences, prompt_lengths = [], []
    for e, p in zip(entries, prompts):
        prompt_ids = encoding.encode(p)
        sequences.append(prompt_ids + encoding.encode(" " + e["output"]) + [eot])
        prompt_lengths.append(len(prompt_ids))

    def reference_collate(seqs, lengths, mask_prompt, max_length):
        width = max(len(s) for s in seqs) - 1
        inputs, targets = [], []
        for s, n in zip(seqs, lengths):
            row_in = [s[i] if i < len(s) else eot for i in range(width)]
            row_t = []
            for i in range(width):
                j = i + 1  # target position i predicts token i + 1
                keep = j < len(s) and not (mask_prompt and j < n)
                row_t.append(s[j] if keep else -100)
            inputs.append(row_in[:max_length])
            targets.append(row_t[:max_length])
        return inputs, targets

    expected = {}
    for name, mask, cut in (("plain", False, None), ("masked", True, None), ("masked_cut16", True, 16)):
        inputs, targets = reference_collate(sequences, prompt_lengths, mask, cut)
        expected[name] = {"inputs": inputs, "targets": targets}
    return {"lab6-instruction-collate.json": as_json({
        "entries": entries, "prompts": prompts, "sequences": sequences,
        "prompt_lengths": prompt_lengths, "eot": eot, "collated": expected,
    })}


# ----------------------------------------------------------------------------- lab 7: agreement
def lab7() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    n = 120
    # Simulated judge data: ground truth from exact match, a judge that agrees most of the time.
    truth = rng.choice(["correct", "wrong"], size=n, p=[0.4, 0.6])
    flip = rng.random(n) < np.where(truth == "correct", 0.15, 0.3)
    judge = np.where(flip, np.where(truth == "correct", "wrong", "correct"), truth)
    # Ordinal 1-5 scores: a reference grader and a noisy judge around it.
    reference = rng.integers(1, 6, size=n)
    judge_scores = np.clip(reference + rng.choice([-2, -1, 0, 0, 0, 1, 1], size=n), 1, 5)
    # Pairwise verdicts with the answers in one order, then swapped.
    first = rng.choice(["A", "B", "tie"], size=40, p=[0.5, 0.35, 0.15])
    consistent = rng.random(40) < 0.7
    swap = {"A": "B", "B": "A", "tie": "tie"}
    other = {"A": "tie", "B": "A", "tie": "B"}
    swapped = np.array([swap[v] if c else other[v] for v, c in zip(first, consistent)])

    labels = ["correct", "wrong"]
    cm = [[int(np.sum((truth == a) & (judge == b))) for b in labels] for a in labels]
    # Kappa from counts with plain loops (the lab uses the confusion matrix)
    p_o = sum(t == j for t, j in zip(truth, judge)) / n
    p_e = sum((list(truth).count(c) / n) * (list(judge).count(c) / n) for c in labels)
    kappa = (p_o - p_e) / (1 - p_e)

    def weighted(kind):  # disagreement form, summed over every pair of items (O(n^2) on purpose)
        k = 5
        w = (lambda i, j: (i - j) ** 2 / (k - 1) ** 2) if kind == "quadratic" else \
            (lambda i, j: abs(i - j) / (k - 1))
        observed = sum(w(a, b) for a, b in zip(reference, judge_scores)) / n
        chance = sum(w(a, b) for a in reference for b in judge_scores) / n ** 2
        return 1 - observed / chance

    def bootstrap(values, n_boot, level, seed):
        # the procedure the lab specifies: every resample drawn at once, then percentiles
        idx = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
        means = values[idx].mean(axis=1)
        tail = (1 - level) / 2
        return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]

    scores = judge_scores.astype(float)
    return {"lab7-judge-agreement.json": as_json({
        "labels": labels, "truth": truth.tolist(), "judge": judge.tolist(),
        "confusion": cm, "accuracy": float(p_o), "kappa": float(kappa),
        "reference_scores": reference.tolist(), "judge_scores": judge_scores.tolist(),
        "quadratic_kappa": float(weighted("quadratic")), "linear_kappa": float(weighted("linear")),
        "first": first.tolist(), "swapped": swapped.tolist(),
        "consistency": float(np.mean([swap[a] == b for a, b in zip(first, swapped)])),
        "bootstrap": {"n_boot": 2000, "level": 0.95, "seed": 11,
                      "ci": bootstrap(scores, 2000, 0.95, 11)},
    })}


MAKERS = [lab1, lab2, lab3, lab4, lab5, lab6, lab7]


# Another CPU may round float32 sums differently (4.8e-07 seen in an AdamW step): a fixture is
# stale only beyond the strictest tolerance the labs' graded tests allow.
FLOAT_ATOL = 1e-6


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return torch.allclose(a, b, rtol=0.0, atol=FLOAT_ATOL)
    return torch.equal(a, b)


def same_content(name: str, new: bytes, old: bytes) -> bool:
    if name.endswith(".safetensors"):  # compare tensors, not the header's byte layout
        a, b = load(new), load(old)
        return a.keys() == b.keys() and all(same_tensor(a[k], b[k]) for k in a)
    return new == old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files")
    args = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    stale = []
    for make in MAKERS:
        for name, content in make().items():
            path = FIXTURES / name
            if args.check:
                if not path.exists() or not same_content(name, content, path.read_bytes()):
                    stale.append(name)
            else:
                path.write_bytes(content)
                print(f"wrote {path.relative_to(ROOT)} ({len(content):,} bytes)")
    if stale:
        sys.exit(f"stale lab fixtures: {', '.join(stale)}; run python tools/make_lab_fixtures.py")


if __name__ == "__main__":
    main()
