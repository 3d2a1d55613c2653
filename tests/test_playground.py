"""tools/playground.py: the int8 weight file the playground page reads, and its test strings.

The page itself is checked in a browser by tools/check_site.py; here, without a browser, the
file format: reading the bytes back as the page does gives the dequantised model exactly."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def playground():
    spec = importlib.util.spec_from_file_location("playground", ROOT / "tools" / "playground.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["playground"] = module
    spec.loader.exec_module(module)
    return module


def test_quantise_rows_error_is_half_a_step(playground):
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    w[3] = 0  # an all-zero row must not divide by zero
    q, scale, rebuilt = playground.quantise_rows(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    assert torch.equal(rebuilt, q.float() * scale[:, None])
    step = scale[:, None].expand_as(w)
    assert bool(((w - rebuilt).abs() <= step / 2 + 1e-7).all())
    assert torch.equal(rebuilt[3], torch.zeros(32))


def test_strings_are_many_varied_and_fixed(playground):
    strings = playground.test_strings()
    assert len(strings) >= 200 and strings == playground.test_strings()
    text = "".join(strings)
    assert "😀" in text and "日本" in text and "<|endoftext|>" in text
    assert any("   " in s for s in strings) and any("\t" in s for s in strings)


def test_packed_bytes_read_back_as_the_page_reads_them(playground):
    from llmscratch.model import GPTConfig, GPTModel

    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=2,
                    drop_rate=0.0, qkv_bias=False, tie_weights=True)
    model = GPTModel(cfg).eval()
    blob, table, dequantised = playground.pack(model)
    params = dict(dequantised.named_parameters())
    names = [entry["name"] for entry in table]
    assert "out_head.weight" not in names  # tied to tok_emb.weight, stored once
    for entry in table:
        assert entry["offset"] % 4 == 0
        n = int(np.prod(entry["shape"]))
        if entry["dtype"] == "int8":
            rows = entry["shape"][0]
            q = np.frombuffer(blob, np.int8, n, entry["offset"]).reshape(entry["shape"])
            scale = np.frombuffer(blob, "<f4", rows, entry["scale_offset"])
            weights = (q.astype(np.float32) * scale[:, None]).astype(np.float32)
        else:
            weights = np.frombuffer(blob, "<f4", n, entry["offset"]).reshape(entry["shape"])
        assert np.array_equal(weights, params[entry["name"]].detach().numpy()), entry["name"]
    # the dequantised model is close to, but not the same as, the original
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        gap = (model(ids) - dequantised(ids)).abs().max().item()
    assert 0 < gap < 0.05
