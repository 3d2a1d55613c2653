"""LoRA (chapter 5, llmscratch/classify.py): the adapter starts as a no-op, merges and unmerges
exactly, trains only itself; and the review splits are balanced, disjoint and deterministic."""
import copy

import pytest
import torch
from torch import nn

from llmscratch.classify import (GPT_LORA_TARGETS, LoRAEmbedding, LoRALinear, LowRankAdapter,
                                 apply_lora, count_trainable, label_reviews, load_review_splits,
                                 make_review_splits, merge_lora, read_review_rows)
from llmscratch.model import GPTConfig, GPTModel


def tiny_gpt(seed=0, tie_weights=False):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=50, context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0,
                    tie_weights=tie_weights)
    return GPTModel(cfg).eval()


def tokens(seed=1):
    return torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(seed))


def randomise_adapters(model, seed=2):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LowRankAdapter):
                module.B.copy_(torch.randn(module.B.shape, generator=generator) * 0.1)


def test_zero_initialised_adapter_leaves_outputs_unchanged():
    layer = nn.Linear(8, 5)
    x = torch.randn(4, 8)
    assert torch.equal(LoRALinear(copy.deepcopy(layer), rank=3, alpha=6)(x), layer(x))

    table = nn.Embedding(20, 6)
    ids = torch.tensor([[3, 19, 0]])
    assert torch.equal(LoRAEmbedding(copy.deepcopy(table), rank=2, alpha=2)(ids), table(ids))

    model = tiny_gpt()
    adapted = apply_lora(copy.deepcopy(model), rank=4, alpha=8, targets=GPT_LORA_TARGETS + ("tok_emb",))
    assert sum(isinstance(m, LoRALinear) for m in adapted.modules()) == 6 * model.cfg.n_layers
    assert isinstance(adapted.tok_emb, LoRAEmbedding)
    with torch.no_grad():
        assert torch.equal(adapted(tokens()), model(tokens()))


def test_merge_unmerge_round_trip():
    torch.manual_seed(0)
    layer = nn.Linear(8, 5)
    lora = LoRALinear(copy.deepcopy(layer), rank=2, alpha=4)
    randomise_adapters(lora)
    x = torch.randn(4, 8)
    before = lora(x)
    assert not torch.allclose(before, layer(x))  # the adapter does something
    lora.merge()
    assert torch.allclose(lora(x), before, atol=1e-6)
    assert torch.allclose(lora.base.weight, layer.weight + 2.0 * lora.B @ lora.A, atol=1e-6)
    with pytest.raises(RuntimeError):
        lora.merge()
    lora.unmerge()
    assert torch.allclose(lora.base.weight, layer.weight, atol=1e-6)
    assert torch.allclose(lora(x), before, atol=1e-6)
    with pytest.raises(RuntimeError):
        lora.unmerge()


def test_embedding_adapter_merge_unmerge_round_trip():
    table = nn.Embedding(20, 6)
    lora = LoRAEmbedding(copy.deepcopy(table), rank=3, alpha=3)
    randomise_adapters(lora)
    ids = torch.tensor([[3, 19, 0], [5, 5, 1]])
    before = lora(ids)
    assert torch.allclose(before, table(ids) + (lora.B @ lora.A)[ids], atol=1e-6)
    lora.merge()
    assert torch.allclose(lora(ids), before, atol=1e-6)
    lora.unmerge()
    assert torch.allclose(lora.base.weight, table.weight, atol=1e-6)


@pytest.mark.parametrize("tie_weights", [False, True])
def test_merge_lora_gives_the_plain_model_with_the_same_outputs(tie_weights):
    model = tiny_gpt(tie_weights=tie_weights)
    adapted = apply_lora(copy.deepcopy(model), rank=4, alpha=8, targets=GPT_LORA_TARGETS + ("tok_emb",))
    randomise_adapters(adapted)
    with torch.no_grad():
        expected = adapted(tokens())
        merged = merge_lora(copy.deepcopy(adapted))
        assert not any(isinstance(m, LowRankAdapter) for m in merged.modules())
        assert merged.state_dict().keys() == model.state_dict().keys()
        assert torch.allclose(merged(tokens()), expected, atol=1e-5)
        assert not torch.allclose(merged(tokens()), model(tokens()), atol=1e-3)


def test_only_adapter_parameters_receive_gradients():
    model = apply_lora(tiny_gpt(), rank=2, alpha=4)
    randomise_adapters(model)  # with B = 0, A's gradient would be exactly zero
    model(tokens()).square().mean().backward()
    for name, parameter in model.named_parameters():
        is_adapter = name.endswith((".A", ".B"))
        assert parameter.requires_grad == is_adapter, name
        if is_adapter:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
    d, r, layers = model.cfg.emb_dim, 2, model.cfg.n_layers
    assert count_trainable(model) == 18 * d * r * layers


def test_trainable_modules_stay_trainable_and_other_models_work():
    model = apply_lora(tiny_gpt(), rank=2, alpha=4, trainable=["out_head"])
    assert model.out_head.weight.requires_grad and not model.tok_emb.weight.requires_grad

    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    adapted = apply_lora(copy.deepcopy(mlp), rank=1, alpha=1, targets=["2"])
    assert isinstance(adapted[2], LoRALinear) and type(adapted[0]) is nn.Linear
    x = torch.randn(5, 4)
    assert torch.equal(adapted(x), mlp(x))
    with pytest.raises(ValueError, match="no nn.Linear or nn.Embedding"):
        apply_lora(mlp, targets=GPT_LORA_TARGETS)
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(adapted, targets=["2"])
    with pytest.raises(TypeError):
        LoRALinear(nn.Conv1d(2, 2, 1), rank=1, alpha=1)
    with pytest.raises(TypeError):
        LoRAEmbedding(nn.Linear(2, 2), rank=1, alpha=1)
    with pytest.raises(ValueError):
        LoRALinear(nn.Linear(2, 2), rank=0, alpha=1)


@pytest.fixture(scope="module")
def examples():
    return label_reviews(read_review_rows())


def test_review_splits_balanced_disjoint_deterministic(examples, tmp_path):
    splits = make_review_splits(examples)
    assert splits == make_review_splits(list(reversed(examples)))  # input order does not matter
    assert splits != make_review_splits(examples, seed=7)
    for name, split in splits.items():
        assert 2 * sum(e["label"] for e in split) == len(split), name
        assert all(isinstance(e["text"], str) and e["label"] in (0, 1) for e in split), name
    sets = [{e["text"] for e in split} for split in splits.values()]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert (len(splits["val"]), len(splits["test"])) == (1000, 2000)

    written = load_review_splits(tmp_path)  # makes and writes the files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert written == splits and load_review_splits(tmp_path) == splits  # read back unchanged
    assert load_review_splits() == splits  # the shared files under data/ hold the same splits


def test_saved_adapter_reloads_into_a_fresh_model(tmp_path):
    from llmscratch.classify import (add_classification_head, adapter_state, apply_lora,
                                     save_adapter)
    from llmscratch.model import GPTConfig, GPTModel

    cfg = GPTConfig(vocab_size=50, context_length=8, emb_dim=16, n_heads=2, n_layers=1,
                    drop_rate=0.0)
    torch.manual_seed(0)
    base = GPTModel(cfg)
    targets = GPT_LORA_TARGETS + ("tok_emb",)

    def wrapped(seed):
        model = add_classification_head(copy.deepcopy(base), seed=seed)
        return apply_lora(model, rank=2, alpha=4, targets=targets, trainable=["out_head"]).eval()

    trained = wrapped(seed=1)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    path = save_adapter(trained, tmp_path / "sub" / "adapter.safetensors")
    assert not path.with_name(path.name + ".partial").exists()
    state = adapter_state(trained)
    assert set(state) == {n for n, p in trained.named_parameters() if p.requires_grad}
    fresh = wrapped(seed=2)
    from safetensors.torch import load_file

    fresh.load_state_dict(load_file(str(path)), strict=False)
    ids = torch.randint(0, 50, (3, 8))
    with torch.no_grad():
        assert torch.equal(fresh.out_head(fresh.features(ids)), trained.out_head(trained.features(ids)))
