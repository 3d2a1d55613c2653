# Mutant of lab 2: the heads are split with a bare view(batch, heads, tokens, head_dim), which
# mixes tokens and heads, instead of view(batch, tokens, heads, head_dim) then transpose. Shapes
# stay right, so only the tests that check values catch it.
# replaces: solution_mha
# loses: attn_mha_values, attn_mha_dropout
class CausalMultiHeadAttention(nn.Module):
    def __init__(self, d_in: int, d_out: int, num_heads: int, dropout: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError("d_out must be a multiple of num_heads")
        self.num_heads, self.head_dim = num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        heads = lambda t: t.view(batch, self.num_heads, tokens, self.head_dim)  # the bug
        q, k, v = heads(self.W_query(x)), heads(self.W_key(x)), heads(self.W_value(x))
        context, _ = attention(q, k, v, causal_mask(tokens), self.dropout)
        return self.out_proj(context.transpose(1, 2).reshape(batch, tokens, -1))
