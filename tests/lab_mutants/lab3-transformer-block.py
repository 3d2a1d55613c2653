# Mutant of lab 3: a post-norm block (the original 2017 transformer) instead of GPT-2's pre-norm:
# the LayerNorm comes after the shortcut addition. It runs and has the right shapes.
# replaces: solution_block
# loses: block_gpt2, block_properties
class TransformerBlock(nn.Module):
    def __init__(self, emb_dim: int, num_heads: int, drop_rate: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        self.norm1 = LayerNorm(emb_dim)
        self.att = CausalSelfAttention(emb_dim, num_heads, drop_rate, qkv_bias)
        self.norm2 = LayerNorm(emb_dim)
        self.ff = FeedForward(emb_dim)
        self.drop_shortcut = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop_shortcut(self.att(x)))
        return self.norm2(x + self.drop_shortcut(self.ff(x)))
