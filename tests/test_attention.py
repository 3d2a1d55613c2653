"""Chapter 2's attention (llmscratch/attention.py): hand values, equivalences, causality."""
import math

import pytest
import torch
import torch.nn.functional as F

from llmscratch.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    attend,
    causal_mask,
    fuse_heads,
    simple_self_attention,
)

# (d_in, d_out, num_heads, qkv_bias, batch, tokens)
SHAPES = [
    (8, 8, 1, False, 1, 1),
    (16, 12, 3, True, 2, 7),
    (32, 64, 8, False, 3, 20),
    (24, 48, 4, True, 1, 33),
]


def test_simple_self_attention_hand_example():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    context, weights = simple_self_attention(x)
    e = math.e
    assert torch.allclose(weights[0], torch.tensor([e, 1, e]) / (2 * e + 1), atol=1e-6)
    assert torch.allclose(context[2], torch.tensor([1 + e, 1 + e]) / (2 + e), atol=1e-6)


def test_attend_scales_by_sqrt_dk():
    q = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    k = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    _, weights = attend(q, k, torch.eye(2))
    # scores (2, 0) / sqrt(4) = (1, 0)
    assert torch.allclose(weights, torch.softmax(torch.tensor([[1.0, 0.0]]), dim=-1))


def test_causal_mask_with_offset():
    assert causal_mask(1, 4).tolist() == [[True, True, True, True]]
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    assert torch.equal(causal_mask(5, 5), torch.ones(5, 5, dtype=torch.bool).tril())
    with pytest.raises(ValueError):
        causal_mask(5, 3)


@pytest.mark.parametrize("d_in,d_out,heads,bias,batch,tokens", SHAPES)
def test_stacked_heads_equal_fused_equal_sdpa(d_in, d_out, heads, bias, batch, tokens):
    torch.manual_seed(d_in + tokens)
    wrapper = MultiHeadAttentionWrapper(d_in, d_out, heads, dropout=0.2, qkv_bias=bias).eval()
    fused = fuse_heads(wrapper).eval()
    x = torch.randn(batch, tokens, d_in)
    out_fused = fused(x)
    assert out_fused.shape == (batch, tokens, d_out)
    torch.testing.assert_close(wrapper(x), out_fused, atol=1e-6, rtol=1e-5)

    q, k, v = (fused.split_heads(W(x)) for W in (fused.W_query, fused.W_key, fused.W_value))
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(fused.out_proj(fused.merge_heads(sdpa)), out_fused, atol=1e-6, rtol=1e-5)


def test_split_and_merge_heads_are_inverse():
    mha = MultiHeadAttention(6, 12, num_heads=3)
    t = torch.randn(2, 5, 12)
    split = mha.split_heads(t)
    assert split.shape == (2, 3, 5, 4)
    assert torch.equal(split[:, 1], t[..., 4:8])  # head 1 owns features 4..7
    assert torch.equal(mha.merge_heads(split), t)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CausalAttention(16, 16),
        lambda: MultiHeadAttentionWrapper(16, 16, num_heads=4),
        lambda: MultiHeadAttention(16, 16, num_heads=4, qkv_bias=True),
    ],
)
@pytest.mark.parametrize("position", [0, 5, 11])
def test_changing_a_future_token_leaves_the_past_unchanged(make, position):
    torch.manual_seed(position)
    layer = make().eval()
    x = torch.randn(2, 12, 16)
    changed = x.clone()
    changed[:, position] += torch.randn(2, 16)
    out, out_changed = layer(x), layer(changed)
    torch.testing.assert_close(out[:, :position], out_changed[:, :position], atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, position], out_changed[:, position])


def test_weights_are_zero_above_the_diagonal_and_rows_sum_to_one():
    mha = MultiHeadAttention(8, 8, num_heads=2).eval()
    _, weights = mha(torch.randn(3, 9, 8), return_weights=True)
    assert weights.shape == (3, 2, 9, 9)
    assert torch.all(weights[..., ~causal_mask(9, 9)] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 9))


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 8, num_heads=2, dropout=0.5)
    x = torch.randn(2, 16, 8)
    mha.eval()
    assert torch.equal(mha(x), mha(x))
    mha.train()
    assert not torch.equal(mha(x), mha(x))


def test_bad_head_count_is_refused():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadAttention(8, 10, num_heads=3)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadAttentionWrapper(8, 10, num_heads=4)
