"""Training throughput of the course model: our GPT (chapters 3-4) against the same-shape model built
from PyTorch's own layers (`nn.TransformerEncoderLayer` with a causal mask), in one run.

    python bench/bench_train.py                 # the shipped model's shape, default threads
    python bench/bench_train.py --compile       # also torch.compile both models (slow to start)
    python bench/bench_train.py --wait-policy   # also compare OpenMP's active and passive waiting

The course recipe has no dropout. With dropout on, attention cannot use PyTorch's fused kernel and
every mask costs a pass of random numbers: the variants with dropout 0.1 show what that costs.
Each variant runs the same full training step (forward, cross-entropy, backward, gradient clipping,
AdamW) on the same batches. Variants are measured in alternation, several rounds, and each reports
its median, so a change in the machine's load hits all of them alike. MFU uses the FLOP count of
`llmscratch.train.training_flops_per_token` and a float32 matmul peak measured at the start.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from llmscratch.model import GPTModel, count_parameters
from llmscratch.train import (COURSE_GPT_CONFIG, make_optimizer, matmul_peak_flops,
                              training_flops_per_token)


class ReferenceGPT(nn.Module):
    """The course model's shape from PyTorch's built-in layers (pre-norm encoder layers + causal mask)."""

    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        layer = nn.TransformerEncoderLayer(cfg.emb_dim, cfg.n_heads, dim_feedforward=4 * cfg.emb_dim,
                                           dropout=cfg.drop_rate, activation=nn.GELU(approximate="tanh"),
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.emb_dim)
        self.head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(cfg.context_length),
                             persistent=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(t, device=idx.device)))
        x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(x))


def make_step(model, optimizer):
    def step(inputs, targets):
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def build(kind, cfg, compile_model=False, fused_adamw=False, drop_rate=None):
    torch.manual_seed(0)
    if drop_rate is not None:
        cfg = dataclasses.replace(cfg, drop_rate=drop_rate)
    model = GPTModel(cfg) if kind == "ours" else ReferenceGPT(cfg)
    optimizer = make_optimizer(model, 1e-4)
    if fused_adamw:
        optimizer = torch.optim.AdamW(optimizer.param_groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
    n_params = count_parameters(model)
    forward_model = torch.compile(model) if compile_model else model
    model.train()
    return make_step(forward_model, optimizer), n_params


def run(args):
    cfg = COURSE_GPT_CONFIG
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [(torch.randint(0, cfg.vocab_size, (args.batch, cfg.context_length)),
                torch.randint(0, cfg.vocab_size, (args.batch, cfg.context_length))) for _ in range(4)]
    variants = {"ours": dict(kind="ours"), "reference (nn.TransformerEncoderLayer)": dict(kind="reference"),
                "ours, dropout 0.1": dict(kind="ours", drop_rate=0.1),
                "reference, dropout 0.1": dict(kind="reference", drop_rate=0.1)}
    if args.fused_adamw:
        variants["ours + fused AdamW"] = dict(kind="ours", fused_adamw=True)
    if args.compile:
        variants["ours + torch.compile"] = dict(kind="ours", compile_model=True)
        variants["reference + torch.compile"] = dict(kind="reference", compile_model=True)
    steps, times, params = {}, {name: [] for name in variants}, {}
    for name, options in variants.items():
        started = time.perf_counter()
        steps[name], params[name] = build(cfg=cfg, **options)
        for inputs, targets in batches[:2]:  # warm-up (and compilation)
            steps[name](inputs, targets)
        print(f"built {name}: {params[name]:,} parameters, warm-up {time.perf_counter() - started:.1f} s",
              flush=True)
    peak = matmul_peak_flops()
    for _ in range(args.rounds):
        for name in variants:
            started = time.perf_counter()
            for inputs, targets in batches[:args.steps]:
                steps[name](inputs, targets)
            times[name].append((time.perf_counter() - started) / args.steps)
    peak = max(peak, matmul_peak_flops())
    flops = training_flops_per_token(cfg)
    tokens = args.batch * cfg.context_length
    rates = {name: tokens / statistics.median(t) for name, t in times.items()}
    print(f"\nshape {cfg}\nbatch {args.batch} x {cfg.context_length} tokens, {torch.get_num_threads()} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}; "
          f"matmul peak {peak / 1e9:.0f} GFLOP/s; {flops / 1e6:.1f} MFLOP per token\n")
    print(f"{'variant':42s} {'tokens/s':>9s} {'MFU':>6s} {'vs ours':>8s}")
    for name, rate in rates.items():
        print(f"{name:42s} {rate:9,.0f} {rate * flops / peak:6.1%} {rate / rates['ours']:8.2f}")
    ref = rates["reference (nn.TransformerEncoderLayer)"]
    print(f"\nours / reference = {rates['ours'] / ref:.2f}; with dropout 0.1 "
          f"{rates['ours, dropout 0.1'] / rates['reference, dropout 0.1']:.2f}; "
          f"dropout off / on (ours) = {rates['ours'] / rates['ours, dropout 0.1']:.2f}")
    return {"rates": rates, "peak": peak, "threads": torch.get_num_threads()}


def compare_wait_policies(argv):
    """OpenMP reads OMP_WAIT_POLICY once at start-up, so each policy needs its own process."""
    for policy in ("ACTIVE", "PASSIVE"):
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        out = subprocess.run([sys.executable, __file__, "--json", *argv], env=env, capture_output=True, text=True,
                             check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"OMP_WAIT_POLICY={policy:8s} ours {result['rates']['ours']:8,.0f} tokens/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="steps per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--fused-adamw", action="store_true")
    parser.add_argument("--wait-policy", action="store_true")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wait_policy:
        passthrough = [f"--batch={args.batch}", f"--steps={args.steps}", f"--rounds={args.rounds}",
                       f"--threads={args.threads}"]
        compare_wait_policies(passthrough)
        return
    result = run(args)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
