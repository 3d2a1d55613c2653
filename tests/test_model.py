"""Chapter 3's GPT model (llmscratch/model.py): parity with transformers, KV cache, loader errors."""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import pytest
import torch
from safetensors.torch import save_file

from llmscratch.attention import MultiHeadAttention
from llmscratch.model import (
    CheckpointMismatchError,
    GPTConfig,
    GPTModel,
    KVCache,
    LlamaConfig,
    LlamaModel,
    count_parameters,
    generate,
    generate_greedy,
    gpt2_config,
    greedy_choice,
    hf_gpt2_config,
    left_pad,
    load_gpt2_safetensors,
    padded_causal_mask,
)

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

# Architectures for the parity test: depth, heads, width, context, vocabulary and tying vary.
HF_CONFIGS = [
    dict(vocab_size=50, context_length=8, emb_dim=16, n_heads=1, n_layers=1, tie_weights=True),
    dict(vocab_size=300, context_length=32, emb_dim=32, n_heads=4, n_layers=2, tie_weights=True),
    dict(vocab_size=257, context_length=64, emb_dim=48, n_heads=3, n_layers=4, tie_weights=False),
    dict(vocab_size=1000, context_length=128, emb_dim=96, n_heads=6, n_layers=3, tie_weights=True),
    dict(vocab_size=128, context_length=16, emb_dim=64, n_heads=8, n_layers=6, tie_weights=False),
]


def config(**kw):
    return GPTConfig(**{"qkv_bias": True, "drop_rate": 0.1, **kw})


def random_hf_model(cfg, seed=0):
    """transformers' GPT-2 with every tensor random (defaults would hide swapped norms/biases)."""
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(hf_gpt2_config(cfg)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            is_norm_weight = ".ln_" in name and name.endswith("weight")
            p.copy_(1 + 0.1 * torch.randn_like(p) if is_norm_weight else 0.1 * torch.randn_like(p))
    return hf


@pytest.fixture(scope="module")
def saved_hf(tmp_path_factory):
    """One saved random checkpoint per parity config: (cfg, hf model, path)."""
    out = []
    for i, kw in enumerate(HF_CONFIGS):
        cfg = config(**kw)
        hf = random_hf_model(cfg, seed=i)
        folder = tmp_path_factory.mktemp(f"hf{i}")
        hf.save_pretrained(folder)
        out.append((cfg, hf, folder / "model.safetensors"))
    return out


@pytest.mark.parametrize("index", range(len(HF_CONFIGS)))
def test_logits_match_transformers(saved_hf, index):
    cfg, hf, path = saved_hf[index]
    ours = load_gpt2_safetensors(GPTModel(cfg), path).eval()
    torch.manual_seed(index)
    ids = torch.randint(0, cfg.vocab_size, (3, cfg.context_length))
    with torch.no_grad():
        diff = (ours(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-5, f"max abs logit difference {diff:.2e} for {cfg}"


def test_original_gpt2_file_layout(saved_hf, tmp_path):
    """OpenAI-converted files have no `transformer.` prefix and may carry causal-mask buffers."""
    cfg, hf, path = saved_hf[1]
    tensors = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items()}
    tensors.pop("lm_head.weight", None)
    n = cfg.context_length
    for i in range(cfg.n_layers):
        tensors[f"h.{i}.attn.bias"] = torch.ones(1, 1, n, n).tril()
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, tmp_path / "model.safetensors")
    ours = load_gpt2_safetensors(GPTModel(cfg), tmp_path / "model.safetensors").eval()
    ids = torch.randint(0, cfg.vocab_size, (2, n))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max().item() < 1e-5


def test_untied_model_loads_a_tied_checkpoint(saved_hf):
    cfg, hf, path = saved_hf[1]
    assert cfg.tie_weights
    ours = load_gpt2_safetensors(GPTModel(GPTConfig(**{**cfg.to_dict(), "tie_weights": False})), path)
    assert torch.equal(ours.out_head.weight, ours.tok_emb.weight)
    assert ours.out_head.weight is not ours.tok_emb.weight


def test_tied_model_refuses_a_separate_head(saved_hf):
    cfg, _, path = saved_hf[2]
    assert not cfg.tie_weights
    with pytest.raises(CheckpointMismatchError, match="tie_weights=False"):
        load_gpt2_safetensors(GPTModel(GPTConfig(**{**cfg.to_dict(), "tie_weights": True})), path)


@pytest.mark.parametrize(
    "change,expected",
    [
        (dict(emb_dim=64), "'wte.weight' has shape (300, 32), but the model needs (300, 64)"),
        (dict(vocab_size=301), "'wte.weight' has shape (300, 32), but the model needs (301, 32)"),
        (dict(context_length=64), "'wpe.weight' has shape (32, 32), but the model needs (64, 32)"),
        (dict(n_layers=3), "no tensor ['h.2.attn.c_attn.bias'"),
        (dict(n_layers=1), "no place for checkpoint tensor(s) ['h.1.attn.c_attn.bias'"),
        (dict(qkv_bias=False), "no place for checkpoint tensor(s) ['h.0.attn.c_attn.bias'"),
    ],
)
def test_mismatched_checkpoint_is_refused_clearly(saved_hf, change, expected):
    cfg, _, path = saved_hf[1]
    model = GPTModel(GPTConfig(**{**cfg.to_dict(), **change}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_gpt2_safetensors(model, path)
    message = str(info.value)
    assert expected in message
    assert ("the checkpoint looks like GPTConfig(vocab_size=300, emb_dim=32, context_length=32, "
            "n_layers=2, qkv_bias=True)") in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "model was modified"


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_gpt2_safetensors(GPTModel(config(**HF_CONFIGS[0])), tmp_path / "nope.safetensors")


def test_hf_config_requires_qkv_bias():
    with pytest.raises(ValueError, match="qkv_bias=True"):
        hf_gpt2_config(GPTConfig(qkv_bias=False))


# ---------------------------------------------------------------- KV cache

SMALL = dict(vocab_size=97, context_length=24, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.1)


@pytest.mark.parametrize("seed", range(6))
def test_kv_cache_gives_the_same_tokens_as_no_cache(seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = GPTModel(GPTConfig(**SMALL, qkv_bias=bool(seed % 2), tie_weights=seed % 3 == 0))
    model.train()  # generate must switch dropout off by itself, and restore the mode after
    limit = SMALL["context_length"]
    # prompt lengths from 1 token to beyond the context; generation runs past the limit
    prompt_len = [1, 5, limit - 1, limit, limit + 7, 13][seed]
    batch = 1 + seed % 3
    prompt = torch.randint(0, SMALL["vocab_size"], (batch, prompt_len), generator=generator)
    new = limit + 5
    without = generate_greedy(model, prompt, new, use_cache=False)
    with_cache = generate_greedy(model, prompt, new, use_cache=True)
    assert model.training
    assert with_cache.shape == (batch, prompt_len + new)
    assert torch.equal(with_cache, without)
    # a smaller generation window than the model's context must agree too
    assert torch.equal(generate_greedy(model, prompt, 10, context_length=7, use_cache=True),
                       generate_greedy(model, prompt, 10, context_length=7, use_cache=False))


def test_no_cache_generation_is_the_argmax_of_a_full_forward_pass():
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**SMALL)).eval()
    prompt = torch.randint(0, SMALL["vocab_size"], (2, 3))
    out = generate_greedy(model, prompt, 30, use_cache=False)
    limit = SMALL["context_length"]
    for t in range(3, out.shape[1]):
        window = out[:, max(0, t - limit):t]
        assert torch.equal(out[:, t], model(window)[:, -1].argmax(-1))


@pytest.mark.parametrize("pieces", [[24], [1] * 24, [5, 1, 1, 10, 7], [23, 1]])
def test_cached_pieces_match_one_pass(pieces):
    torch.manual_seed(1)
    model = GPTModel(GPTConfig(**SMALL, qkv_bias=True)).eval()
    ids = torch.randint(0, SMALL["vocab_size"], (2, sum(pieces)))
    cache, outs, start = model.new_cache(), [], 0
    with torch.no_grad():
        full = model(ids)
        for n in pieces:
            outs.append(model(ids[:, start:start + n], cache=cache))
            start += n
    assert len(cache) == sum(pieces)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="do not fit the context"):
        model(ids[:, :1], cache=cache)  # the cache is at the context limit


def test_generate_stops_at_eos_and_uses_the_chooser():
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**SMALL)).eval()
    prompt = torch.zeros(1, 2, dtype=torch.long)
    always_7 = lambda logits: torch.full((logits.shape[0], 1), 7)  # noqa: E731
    assert generate(model, prompt, 10, choose=always_7)[0, 2:].tolist() == [7] * 10
    assert generate(model, prompt, 10, choose=always_7, eos_id=7).shape == (1, 3)
    # two rows: row 0 ends at its 2nd new token, row 1 at its 4th; row 0 pads with eos meanwhile
    script = iter([[3, 4], [7, 5], [6, 6], [8, 7], [9, 9]])
    scripted = lambda logits: torch.tensor(next(script)).unsqueeze(1)  # noqa: E731
    out = generate(model, torch.zeros(2, 1, dtype=torch.long), 10, choose=scripted, eos_id=7)
    assert out[:, 1:].tolist() == [[3, 7, 7, 7], [4, 5, 6, 7]]


# ---------------------------------------------------------------- left-padded batches

TINY_LLAMA = dict(vocab_size=97, context_length=24, emb_dim=36, n_heads=6, n_kv_heads=2,
                  n_layers=2, hidden_dim=64)


def make_model(kind, seed):
    torch.manual_seed(seed)
    if kind == "gpt":
        return GPTModel(GPTConfig(**SMALL, qkv_bias=bool(seed % 2)))
    return LlamaModel(LlamaConfig(**TINY_LLAMA))


def generate_logged(model, idx, n_new, **kwargs):
    logged = []

    def choose(logits):
        logged.append(logits)
        return greedy_choice(logits)

    out = generate(model, idx, n_new, choose=choose, **kwargs)
    return out, torch.stack(logged)


@pytest.mark.parametrize("kind", ["gpt", "llama"])
@pytest.mark.parametrize("seed", range(4))
def test_left_padded_batch_equals_each_prompt_alone(kind, seed):
    model = make_model(kind, seed).train()  # generate switches dropout off itself
    generator = torch.Generator().manual_seed(seed)
    # lengths from one token to the whole context (24); 20 new tokens slide every window
    lengths = [[1, 5, 9], [3, 3, 12], [24, 2, 17, 1], [6, 11]][seed]
    prompts = [torch.randint(0, 97, (n,), generator=generator).tolist() for n in lengths]
    idx, pads = left_pad(prompts, pad_id=seed)
    for window in (None, 10):  # the model's context, and a smaller generation window
        out, logits = generate_logged(model, idx, 20, pads=pads, context_length=window)
        assert model.training
        for r, prompt in enumerate(prompts):
            one, one_logits = generate_logged(model, torch.tensor([prompt]), 20,
                                              context_length=window)
            assert out[r, pads[r]:].tolist() == one[0].tolist()
            torch.testing.assert_close(logits[:, r], one_logits[:, 0], atol=1e-4, rtol=0)


def test_left_padded_generation_stops_each_row_at_eos():
    model = make_model("gpt", 0).eval()
    prompts = [[1, 2, 3, 4, 5], [6]]
    idx, pads = left_pad(prompts, pad_id=0)
    # row 0 ends at its 2nd new token, row 1 at its 3rd
    script = iter([[3, 4], [7, 5], [6, 7], [9, 9]])
    scripted = lambda logits: torch.tensor(next(script)).unsqueeze(1)  # noqa: E731
    out = generate(model, idx, 10, choose=scripted, eos_id=7, pads=pads)
    assert out[:, 5:].tolist() == [[3, 7, 7], [4, 5, 7]]


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_pad_tokens_change_nothing_and_the_mask_is_what_hides_them(kind):
    model = make_model(kind, 1).eval()
    ids = torch.randint(0, 97, (1, 6), generator=torch.Generator().manual_seed(1))
    pads = torch.tensor([4])
    with torch.no_grad():
        alone = model(ids)
        runs = [model(torch.cat([torch.full((1, 4), pad), ids], dim=1), model.new_cache(pads))
                for pad in (0, 50, 96)]
        for run in runs:  # whatever the pad tokens are, the real tokens' logits are the same
            torch.testing.assert_close(run[:, 4:], alone, atol=1e-5, rtol=0)
        padded_ids = torch.cat([torch.full((1, 4), 50), ids], dim=1)
        positions = model.new_cache(pads).prepare(padded_ids, torch.arange(10))
        assert positions.tolist() == [[0, 0, 0, 0, 0, 1, 2, 3, 4, 5]]
        # the same positions with the plain causal mask: the pads leak into the answer
        leaky = KVCache(len(model.blocks), pads)
        leaky.prepare = lambda idx, positions: (positions - pads[:, None]).clamp(min=0)
        leaked = model(padded_ids, leaky)
        assert (leaked[:, 4:] - alone).abs().max() > 1e-3


def test_padded_causal_mask_by_hand():
    mask = padded_causal_mask(torch.tensor([0, 1, 3]), 2, 4)  # 2 new tokens after 2 cached
    assert mask.shape == (3, 1, 2, 4)
    assert mask[:, 0].int().tolist() == [
        [[1, 1, 1, 0], [1, 1, 1, 1]],
        [[0, 1, 1, 0], [0, 1, 1, 1]],
        [[0, 0, 1, 0], [0, 0, 0, 1]],  # three pads: query 2 is a pad and sees only itself
    ]


def test_unpadded_cache_keeps_the_old_path():
    model = make_model("gpt", 0).eval()
    cache = model.new_cache()
    assert cache.pads is None
    with torch.no_grad():
        model(torch.zeros(2, 3, dtype=torch.long), cache)
    assert all(layer.mask is None for layer in cache.layers)


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_bad_pads_are_refused_clearly(kind):
    model = make_model(kind, 0).eval()
    idx, pads = left_pad([[1, 2, 3], [4]], pad_id=0)
    with pytest.raises(ValueError, match="a row needs a real token"):
        generate(model, idx, 2, pads=[0, 3])
    with pytest.raises(ValueError, match="a row needs a real token"):
        generate(model, idx, 2, pads=[0, -1])
    with pytest.raises(ValueError, match="for each of the 2 rows"):
        generate(model, idx, 2, pads=[0])
    with pytest.raises(ValueError, match="use_cache=True"):
        generate(model, idx, 2, pads=pads, use_cache=False)
    with pytest.raises(ValueError, match="one count of pad tokens"):
        model.new_cache([0.5, 1.0])
    with pytest.raises(ValueError, match="pads for 3 rows, the batch has 2"):
        model(idx, model.new_cache([0, 2, 1]))
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="at least one prompt"):
        left_pad([], pad_id=0)


# ---------------------------------------------------------------- model and config

def test_config_json_round_trip_and_unknown_keys():
    cfg = GPTConfig(vocab_size=123, context_length=45, emb_dim=24, n_heads=3, n_layers=2,
                    drop_rate=0.05, qkv_bias=True, tie_weights=True)
    assert GPTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert GPTConfig.from_dict(GPTConfig().to_dict()) == GPTConfig()
    with pytest.raises(ValueError, match=r"unknown GPTConfig field\(s\) \['n_embd'\]"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_embd": 24})
    with pytest.raises(ValueError, match="multiple of n_heads"):
        GPTConfig(emb_dim=10, n_heads=3)


def test_forward_shapes_and_context_limit():
    cfg = GPTConfig(**SMALL)
    model = GPTModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (3, cfg.context_length))
    assert model(ids).shape == (3, cfg.context_length, cfg.vocab_size)
    with pytest.raises(ValueError, match="do not fit the context of 24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[batch, tokens\]"):
        model(torch.zeros(5, dtype=torch.long))


def test_model_attention_equals_chapter_2_manual_attention():
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**SMALL, qkv_bias=True)).eval()
    att = model.blocks[1].att
    manual = MultiHeadAttention(32, 32, 4, qkv_bias=True).eval()
    manual.load_state_dict(att.state_dict())
    x = torch.randn(2, 11, 32)
    torch.testing.assert_close(att(x), manual(x), atol=1e-6, rtol=1e-5)


def test_parameter_counts_of_gpt2_small():
    with torch.device("meta"):
        assert count_parameters(GPTModel(gpt2_config("124M"))) == 124_439_808
        assert count_parameters(GPTModel(gpt2_config("124M", tie_weights=False))) == 163_037_184


def test_linear_layers_are_plain_nn_linear():
    model = GPTModel(GPTConfig(**SMALL))
    block = model.blocks[0]
    for layer in (block.att.W_query, block.att.W_key, block.att.W_value, block.att.out_proj,
                  block.ff.layers[0], block.ff.layers[2], model.out_head):
        assert type(layer) is torch.nn.Linear


def test_layer_cache_grows_and_equals_concatenation():
    from llmscratch.model import LayerCache

    torch.manual_seed(0)
    cache, keys, values = LayerCache(), [], []
    for n in [50, 30, 1, 1, 100]:  # crosses the first buffer size and a doubling
        k, v = torch.randn(2, 3, n, 4), torch.randn(2, 3, n, 4)
        keys.append(k)
        values.append(v)
        all_k, all_v = cache.append(k, v)
        assert torch.equal(all_k, torch.cat(keys, dim=-2))
        assert torch.equal(all_v, torch.cat(values, dim=-2))
        assert len(cache) == sum(t.shape[-2] for t in keys)
    assert cache.keys.shape == (2, 3, 182, 4)


def test_cache_nbytes_counts_the_cached_tokens():
    model = GPTModel(GPTConfig(**SMALL)).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, SMALL["vocab_size"], (3, 5)), cache=cache)
    assert cache.nbytes() == 2 * SMALL["n_layers"] * 3 * 5 * SMALL["emb_dim"] * 4
