# Mutant of lab 5: the LoRA output is scaled by alpha instead of alpha / rank (a convention some
# code uses, but not the one the lab asks for). Starting from B = 0 it is invisible, and training
# still works (the scale acts like a larger learning rate). The correct merge_lora, which folds in
# alpha / rank, then no longer reproduces this layer, so the merge test fails too.
# replaces: solution_lora_layer
# loses: lora_layer, lora_linear, lora_merge
class LoRALayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError("rank must be at least 1")
        self.rank, self.alpha = rank, alpha
        self.A = nn.Parameter(torch.empty(rank, in_dim))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(out_dim, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * (x @ self.A.T @ self.B.T)  # the bug: no division by the rank
