"""The playground's files: the course model for the browser, and what the browser must match.

    python tools/playground.py OUT      # writes OUT/playground/ (the site build calls build())

The playground page (book/playground.md, book/_ext/static/playground.js) runs the course's
pretrained model, checkpoints/course-gpt, in the reader's browser. This tool writes, from that
checkpoint and with the course's own code (llmscratch.train.load_pretrained, llmscratch.model):

* course-gpt-int8-<hash>.bin: every matrix as int8 rows, each row with a float32 scale
  (largest |weight| of the row / 127); vectors (biases, norms) stay float32. Little-endian,
  every tensor at an offset that is a multiple of four. The name carries the file's own
  SHA-256, so a browser may keep it for good: a new model gets a new name.
* course-gpt.json: the header: the model's config, each tensor's place in the file, the
  SHA-256 of the source weights (equal to the model card's SHA256SUMS, checked here) and of
  the .bin, the tokenizer's file and pattern, and the error the int8 format costs.
* course-bpe-4k.tiktoken: chapter 1's rank file, copied byte for byte.
* check.json and check-logits.bin: what tools/check_site.py makes the page reproduce. The
  expected values come from PyTorch running llmscratch's GPTModel with the weights
  dequantised exactly as the page dequantises them (int8 x float32 scale, rounded to float32),
  so only float32 arithmetic separates the two; the same figures against the original float32
  weights measure what the int8 format itself costs.

Nothing here is typed by hand: every figure the page or the check shows is computed below.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "course-gpt"
FOLDER = "playground"  # inside the site's _static/
FORMAT_VERSION = 1
# What the page must match. Logits: float32 arithmetic in a different order (the page sums in
# float64, PyTorch in float32 blocks) moved logits of size ~10 by 6e-6 at most; one weight of
# a feed-forward layer one int8 step off moved them by 5e-5, the int8 format itself by 0.2:
# this tolerance tells arithmetic from a wrong weight. Attention weights (probabilities) moved
# by 2e-7 through arithmetic, by 2e-6 with that one weight off.
LOGIT_TOLERANCE = 2e-5
ATTENTION_TOLERANCE = 1e-6
GREEDY_TOKENS = 32
ATTENTION_PROBE = {"prompt": 1, "layer": 3, "head": 5}
PROMPTS = [
    "KING HENRY.\n",
    "To be, or not to be, that is the question:",
    "ROMEO.\nBut soft, what light through yonder window",
    "The movie was",
    "I love this phone, the battery",
    "First Citizen.\nBefore we proceed any further, hear me speak.",
    "HAMLET.\nO God, O God!",
    "This product broke after two days and",
    "The President said on Tuesday that",
    "LADY MACBETH.\nOut, damned spot!",
]


# --- test strings for the tokenizer ----------------------------------------------------------

HAND_WRITTEN = [
    "", " ", "  ", "\n", "\n\n\n", "\t", " \t \n ", "\r\n", "a", "A", "hello world",
    "Hello, world!", "KING HENRY.\nNow, lords, for France!",
    "To be, or not to be: that is the question.", "I'm sure you'll see they've gone, we'd 've",
    "it's IT'S It'S", "don't   stop    here", "trailing spaces   ", "   leading spaces",
    "tabs\tbetween\twords", "mixed \t\n whitespace \u00a0 runs", "line one\nline two\n\nline four",
    "numbers 0 1 12 123 1234 12345 3.14159 -42 1e10 ١٢٣", "2026-11-30 08:55:21",
    "emoji 😀 😃 👍🏽 🇫🇷 👨‍👩‍👧 ❤️", "🤖🤖🤖", "CJK 日本語のテキスト 中文 한국어",
    "混合 mixed 文字 text", "accents: café naïve résumé Ærø Ångström", "Zürich Straße ß ẞ",
    "Greek: Ἐν ἀρχῇ ἦν ὁ λόγος", "Cyrillic: Съешь же ещё этих мягких булок",
    "Arabic: مرحبا بالعالم", "Hebrew: שלום עולם", "Devanagari: नमस्ते दुनिया",
    "combining: e\u0301 a\u0308 n\u0303", "zero width: a\u200bb\u200cc\u200dd",
    "BOM \ufeff inside", "next line \u0085 here", "ideographic\u3000space",
    "em\u2003space and thin\u2009space", "line\u2028separator", "<|endoftext|>",
    "one<|endoftext|>two", "<|endoftext|><|endoftext|>", " <|endoftext|> spaced ",
    "<|endoftext", "endoftext|>", "<|begin|>", "punctuation!!! ??? ... --- ***",
    "quotes “curly” ‘single’ «guillemets»", "math: ∑ ∫ √ ≤ ≥ ≠ ∞ π", "arrows → ← ↑ ↓ ⇒",
    "code: def f(x): return x**2 + 1", "{\"json\": [1, 2, 3], \"ok\": true}", "a/b\\c|d",
    "https://example.org/path?q=1&r=2", "user@example.com", "#hashtag @mention $money 100%",
    "THE END.", "Exeunt.", "Enter ROMEO and JULIET.", "Thou art more lovely and more temperate",
    "'s 't 're 've 'm 'll 'd", "''''", "   \n   \n", "x" * 300, " " * 50, "ab" * 120,
    "😀" * 20, "日本" * 40,
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " " * 6 + "\n\t",
    ".,;:!?'\"-()[]{}<>/\\|&*%$#@+=_~`^",
    "éèêëàâäôöûüçñßøåæœ",
    "日本語中文字漢字東京大学한국어가나다ひらがなカタカナ",
    "😀😂🥲😍🤔👍👎🎉🔥💡🌍🚀🐍❤️",
    "αβγδεζηθλμπσωЖЗИЙКЛМНабвгд",
    "\u00a0\u3000\u2009\u200b\ufeff\u0085\r",
]


def test_strings(count: int = 240, seed: int = 19) -> list[str]:
    """Hand-written edge cases, then seeded random mixtures of letters, digits, whitespace
    runs, punctuation, accents, CJK, emoji and unusual spaces: the same list at every build."""
    rng = random.Random(seed)
    strings = list(HAND_WRITTEN)
    while len(strings) < count:
        weights = [rng.random() ** 2 for _ in POOLS]
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 80])
        text = ""
        while len(text) < length:
            pool = rng.choices(POOLS, weights)[0]
            run = rng.randint(1, 6)
            text += "".join(rng.choice(pool) for _ in range(run))
        if rng.random() < 0.1:
            text = text[:len(text) // 2] + "<|endoftext|>" + text[len(text) // 2:]
        strings.append(text)
    return strings


# --- quantisation -----------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quantise_rows(weight):
    """int8 rows and their float32 scales, and the float32 matrix the browser rebuilds
    from them (q * scale, one float32 rounding: the same in PyTorch and JavaScript)."""
    import torch

    scale = (weight.abs().amax(dim=1) / 127).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale, q.float() * scale[:, None]


def tensor_names(model) -> list[str]:
    """Each stored tensor once (the output layer shares the token embedding)."""
    names = []
    for name, _ in model.named_parameters():  # a tied parameter is listed once
        names.append(name)
    return names


def pack(model):
    """(binary file, tensor table, dequantised model)."""
    import numpy as np
    import torch

    dequantised = copy.deepcopy(model)
    params = dict(dequantised.named_parameters())
    chunks, table, offset = [], [], 0

    def add(array) -> int:
        nonlocal offset
        data = array.tobytes()
        start = offset
        pad = (-len(data)) % 4
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
        return start

    with torch.no_grad():
        for name in tensor_names(model):
            weight = params[name]
            entry = {"name": name, "shape": list(weight.shape)}
            if weight.dim() == 2:
                q, scale, rebuilt = quantise_rows(weight.detach())
                entry["dtype"] = "int8"
                entry["offset"] = add(q.numpy().astype(np.int8))
                entry["scale_offset"] = add(scale.numpy().astype("<f4"))
                weight.copy_(rebuilt)
            else:
                entry["dtype"] = "float32"
                entry["offset"] = add(weight.detach().numpy().astype("<f4"))
            table.append(entry)
    dequantised.eval()
    return b"".join(chunks), table, dequantised


# --- what the page must reproduce -------------------------------------------------------------

def attention_weights(model, ids, layer: int, head: int):
    """One head's attention weights over a prompt, from the course's own attend() and
    causal_mask() applied to the block's queries and keys (captured with a hook)."""
    import torch

    from llmscratch.attention import attend, causal_mask

    seen = {}
    block = model.blocks[layer]
    hook = block.att.register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0]))
    try:
        with torch.no_grad():
            model(ids)
            att = block.att
            q = att.split_heads(att.W_query(seen["x"]))[0, head]
            k = att.split_heads(att.W_key(seen["x"]))[0, head]
            v = att.split_heads(att.W_value(seen["x"]))[0, head]
            n = q.shape[0]
            _, weights = attend(q, k, v, mask=causal_mask(n, n))
    finally:
        hook.remove()
    return weights


def expected_values(original, dequantised, encoding) -> tuple[dict, bytes]:
    import numpy as np
    import torch

    from llmscratch.model import generate_greedy

    strings = test_strings()
    ids = [encoding.encode(s, allowed_special="all") for s in strings]
    prompt_ids = [encoding.encode(p, allowed_special="all") for p in PROMPTS]
    last_logits, greedy, gaps = [], [], []
    error_all_positions, error_last = 0.0, 0.0
    greedy_original_equal = 0
    with torch.no_grad():
        for p in prompt_ids:
            x = torch.tensor([p])
            a, b = dequantised(x)[0], original(x)[0]
            last_logits.append(a[-1].numpy().astype("<f4"))
            error_all_positions = max(error_all_positions, (a - b).abs().max().item())
            error_last = max(error_last, (a[-1] - b[-1]).abs().max().item())
            out = generate_greedy(dequantised, x, GREEDY_TOKENS)[0, len(p):].tolist()
            greedy.append(out)
            ref = generate_greedy(original, x, GREEDY_TOKENS)[0, len(p):].tolist()
            greedy_original_equal += sum(1 for s, t in zip(out, ref) if s == t)
            # the smallest margin between the chosen token and the runner-up, per prompt
            full = torch.tensor([p + out[:-1]])
            top2 = dequantised(full)[0, len(p) - 1:].topk(2, dim=-1).values
            gaps.append((top2[:, 0] - top2[:, 1]).min().item())
    probe = ATTENTION_PROBE
    weights = attention_weights(dequantised, torch.tensor([prompt_ids[probe["prompt"]]]),
                                probe["layer"], probe["head"])
    weights_original = attention_weights(original, torch.tensor([prompt_ids[probe["prompt"]]]),
                                         probe["layer"], probe["head"])
    check = {
        "strings": strings,
        "ids": ids,
        "prompts": PROMPTS,
        "prompt_ids": prompt_ids,
        "logits_file": "check-logits.bin",
        "greedy": greedy,
        "greedy_tokens": GREEDY_TOKENS,
        "smallest_greedy_margin": min(gaps),
        "attention": {**probe, "weights": weights.tolist()},
        "tolerance": {"logits": LOGIT_TOLERANCE, "attention": ATTENTION_TOLERANCE},
        "int8_cost": {
            "max_logit_error_last_position": error_last,
            "max_logit_error_all_positions": error_all_positions,
            "max_attention_error": (weights - weights_original).abs().max().item(),
            "greedy_tokens_equal_to_float32": greedy_original_equal,
            "greedy_tokens_compared": GREEDY_TOKENS * len(PROMPTS),
        },
    }
    return check, np.stack(last_logits).tobytes()


# --- the build --------------------------------------------------------------------------------

def cache_key() -> str:
    """Changes whenever anything the output depends on changes."""
    digest = hashlib.sha256()
    code = ["model.py", "attention.py", "tokenizer.py", "train.py"]
    for path in [Path(__file__), CHECKPOINT / "SHA256SUMS",
                 *(ROOT / "llmscratch" / name for name in code)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build(out: Path) -> Path:
    """Write OUT/playground/ (replacing it) and return that folder."""
    import numpy as np  # noqa: F401  (torch needs it to hand over arrays)
    import torch

    from llmscratch.train import load_pretrained, read_checksums

    torch.set_num_threads(1)  # tiny tensors: a second thread only waits
    # verifies every file against SHA256SUMS; a changed file stops the build
    original, encoding = load_pretrained(CHECKPOINT)
    sums = read_checksums(CHECKPOINT)
    source = CHECKPOINT / "model.safetensors"
    config = json.loads((CHECKPOINT / "config.json").read_text())
    vocab = CHECKPOINT / config["tokenizer"]
    from llmscratch.tokenizer import EOT, GPT2_PATTERN

    blob, table, dequantised = pack(original)
    blob_sha = sha256_bytes(blob)
    check, logits = expected_values(original, dequantised, encoding)
    name = f"course-gpt-int8-{blob_sha[:16]}.bin"
    header = {
        "format_version": FORMAT_VERSION,
        "what": ("the course's pretrained GPT for the browser: matrices as int8 rows with a "
                 "float32 scale per row (weight = int8 x scale), vectors as float32; "
                 "little-endian"),
        "made_by": "tools/playground.py",
        "config": config["model"],
        "parameters": sum(p.numel() for p in original.parameters()),
        "source": {"file": "checkpoints/course-gpt/model.safetensors",
                   "sha256": sums[source.name],
                   "bytes": source.stat().st_size},
        "weights": {"file": name, "sha256": blob_sha, "bytes": len(blob)},
        "tokenizer": {"file": vocab.name, "sha256": sums[vocab.name], "pattern": GPT2_PATTERN,
                      "special_tokens": {EOT: config["model"]["vocab_size"] - 1}},
        "tied_output": "out_head.weight is tok_emb.weight",
        "tensors": table,
        "int8_cost": check["int8_cost"],
        "tolerance": check["tolerance"],
        "check_prompts": len(PROMPTS),
    }
    target = out / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        staging = Path(tmp) / FOLDER
        staging.mkdir()
        (staging / name).write_bytes(blob)
        (staging / "course-gpt.json").write_text(json.dumps(header, indent=1) + "\n")
        shutil.copyfile(vocab, staging / vocab.name)
        (staging / "check.json").write_text(json.dumps(check, ensure_ascii=False) + "\n")
        (staging / check["logits_file"]).write_bytes(logits)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # never a half-written folder under the real name
    return target


def ensure(cache_root: Path) -> Path:
    """The folder holding playground/, built once per cache_key() (the site build calls this)."""
    folder = cache_root / cache_key()
    if not (folder / FOLDER / "course-gpt.json").is_file():
        build(folder)
        for old in cache_root.iterdir():  # builds for an older checkpoint or older code
            if old.is_dir() and old != folder:
                shutil.rmtree(old, ignore_errors=True)
    return folder


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__.split("\n\n")[1])
    target = build(Path(sys.argv[1]))
    header = json.loads((target / "course-gpt.json").read_text())
    cost = header["int8_cost"]
    print(f"{target}: {header['weights']['file']} {header['weights']['bytes']:,} bytes "
          f"(float32 source {header['source']['bytes']:,}); int8 moves logits by at most "
          f"{cost['max_logit_error_all_positions']:.3g}; greedy tokens equal to float32's: "
          f"{cost['greedy_tokens_equal_to_float32']}/{cost['greedy_tokens_compared']}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
