"""The course's pretraining recipe against a nanoGPT-style character-level baseline, on the same
text and the same wall-clock budget, in one run.

    python bench/bench_pretrain.py                 # 10 minutes of training each (about 25 min in all)
    python bench/bench_pretrain.py --minutes 2     # a shorter comparison
    python bench/bench_pretrain.py --drop-rate 0.1 # also the course recipe with dropout 0.1

(a) the course recipe: chapter 4's model shape (COURSE_GPT_CONFIG), its BPE vocabulary, batches
    and AdamW settings (PRETRAIN_CONFIG), its warm-up + cosine schedule;
(b) the baseline: the small-CPU configuration nanoGPT publishes for Shakespeare at the character
    level (4 layers, 4 heads, 128 wide, context 64, batch 12, lr 1e-3 decaying to 1e-4 after
    100 warm-up steps, AdamW betas 0.9/0.99, dropout 0), built with the course's own GPTModel.

Both train on the same training text and are scored on the same validation text (chapter 4's
split: every tenth chunk of 8,192 course tokens, decoded back to text), in bits per UTF-8 byte:
the loss summed over the validation text in nats, divided by its bytes and by ln 2. Per-token
losses of different vocabularies do not compare; bits per byte do.

Fairness on a shared machine: the two runs take turns, one optimizer step each, and each is
charged only the wall time of its own steps until it has used its budget. A change in the
machine's load therefore hits both alike. Each schedule's length is set from its speed in a few
timed warm-up steps, so that the learning rate has decayed when the budget runs out.
"""
import argparse
import dataclasses
import math
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as tools/pretrain.py: see its comment

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from llmscratch.model import GPTConfig, GPTModel, count_parameters  # noqa: E402
from llmscratch.tokenizer import load_course_encoding  # noqa: E402
from llmscratch.train import (COURSE_GPT_CONFIG, PRETRAIN_CONFIG, ReplayableBatches,  # noqa: E402
                              corpus_token_ids, eval_loader, evaluate_bits_per_byte, lr_at,
                              make_optimizer, token_byte_lengths, train_val_split)


class Run:
    """One model, its optimizer, batches and schedule, trained one step at a time."""

    def __init__(self, name, model, optimizer, batches, max_lr, min_lr, warmup):
        self.name, self.model, self.optimizer, self.batches = name, model, optimizer, batches
        self.max_lr, self.min_lr, self.warmup = max_lr, min_lr, warmup
        self.max_steps, self.step, self.seconds, self.loss = None, 0, 0.0, float("nan")

    def train_step(self):
        lr = lr_at(self.step, self.max_lr, self.min_lr, self.warmup, self.max_steps or 10**9)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        inputs, targets = self.batches(self.step)
        logits = self.model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.seconds += time.perf_counter() - started
        self.step, self.loss = self.step + 1, loss.item()


def random_windows(ids, context, batch, seed):
    """nanoGPT's batches: `batch` windows at random offsets, a pure function of the step."""
    def batches(step):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(len(ids) - context - 1, (batch,), generator=generator)
        x = torch.stack([ids[s:s + context] for s in starts])
        y = torch.stack([ids[s + 1:s + 1 + context] for s in starts])
        return x, y
    return batches


def course_run(train_ids, drop_rate=None):
    torch.manual_seed(0)
    model_cfg = COURSE_GPT_CONFIG
    name = "course recipe (BPE 4,096, 6 x 256, context 256)"
    if drop_rate is not None:
        model_cfg = dataclasses.replace(model_cfg, drop_rate=drop_rate)
        name = f"course recipe, dropout {drop_rate:g}"
    model = GPTModel(model_cfg)
    cfg = PRETRAIN_CONFIG
    optimizer = make_optimizer(model, cfg.max_lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    batches = ReplayableBatches(train_ids, COURSE_GPT_CONFIG.context_length, cfg.batch_size,
                                cfg.stride, cfg.seed)
    return Run(name, model, optimizer, batches,
               cfg.max_lr, cfg.min_lr, cfg.warmup_steps)


def char_run(train_chars, n_chars):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=n_chars, context_length=64, emb_dim=128, n_heads=4, n_layers=4,
                    drop_rate=0.0, qkv_bias=False, tie_weights=True)
    model = GPTModel(cfg)
    optimizer = make_optimizer(model, 1e-3, 0.1, (0.9, 0.99))
    return Run("nanoGPT-style characters (4 x 128, context 64)", model, optimizer,
               random_windows(train_chars, 64, 12, seed=1337), 1e-3, 1e-4, 100)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each run")
    parser.add_argument("--threads", type=int, default=0, help="PyTorch threads (default: its choice)")
    parser.add_argument("--drop-rate", type=float, action="append", default=[], metavar="P",
                        help="also train the course recipe with this dropout rate (repeatable)")
    parser.add_argument("--warmup-steps", type=int, default=5, choices=range(1, 1000), metavar="N",
                        help="timed steps that set each schedule's length")
    args = parser.parse_args()
    if args.minutes <= 0:
        raise SystemExit("--minutes must be positive")
    if any(not 0 <= p < 1 for p in args.drop_rate):
        raise SystemExit("--drop-rate must be in [0, 1)")
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = 60 * args.minutes

    encoding = load_course_encoding()
    train_ids, val_ids = train_val_split(corpus_token_ids(encoding))
    token_bytes = token_byte_lengths(encoding)
    # the same texts for the character model: the split's token ids spelled out
    train_text = encoding.decode(train_ids.tolist())
    val_text = encoding.decode(val_ids.tolist())
    chars = sorted(set(train_text) | set(val_text))
    index = {c: i for i, c in enumerate(chars)}
    train_chars = torch.tensor([index[c] for c in train_text])
    val_chars = torch.tensor([index[c] for c in val_text])
    char_bytes = torch.tensor([len(c.encode("utf-8")) for c in chars])
    print(f"training text {len(train_text.encode()):,} bytes, validation {len(val_text.encode()):,} "
          f"bytes; {len(chars)} characters; {torch.get_num_threads()} thread(s); "
          f"budget {args.minutes:g} min each")

    baseline = char_run(train_chars, len(chars))
    runs = [course_run(train_ids), *(course_run(train_ids, p) for p in args.drop_rate), baseline]
    for run in runs:  # schedule length from the speed of a few steps (they count as training)
        run.train_step()  # the first step pays for one-off set-up: not timed for the estimate
        first = run.seconds
        for _ in range(args.warmup_steps):
            run.train_step()
        per_step = (run.seconds - first) / args.warmup_steps
        run.max_steps = max(run.step + 1, int(budget / per_step))
        print(f"{run.name}: {count_parameters(run.model):,} parameters, "
              f"{per_step:.3f} s per step -> schedule of {run.max_steps:,} steps")
    last_report = time.perf_counter()
    while any(run.seconds < budget and run.step < run.max_steps for run in runs):
        for run in runs:  # take turns, so that the machine's load hits both alike
            if run.seconds < budget and run.step < run.max_steps:
                run.train_step()
        if time.perf_counter() - last_report > 60:
            last_report = time.perf_counter()
            print("  " + "; ".join(f"{run.name.split(' (')[0]}: step {run.step}, "
                                   f"{run.seconds / 60:.1f} min, loss {run.loss:.3f}" for run in runs),
                  flush=True)

    results = {}
    for run in runs:
        ids, lengths = (val_chars, char_bytes) if run is baseline else (val_ids, token_bytes)
        # non-overlapping windows of the model's context, every target counted
        loader = eval_loader(ids, run.model.cfg.context_length, batch_size=32)
        bpb = evaluate_bits_per_byte(run.model, loader, lengths)
        results[run.name] = bpb
        print(f"{run.name}: {run.step:,} steps in {run.seconds / 60:.1f} min, "
              f"{run.step * run.batches(0)[0].numel() / run.seconds:,.0f} tokens/s; "
              f"validation {bpb:.3f} bits per byte")
    char = results[baseline.name]
    print(f"\n{math.log2(256):.0f} bits per byte would be knowing nothing")
    for run in runs[:-1]:  # every course run against the baseline
        ratio = results[run.name] / char
        print(f"{run.name} / baseline bits per byte = {ratio:.3f} "
              f"({'the course recipe is better' if ratio < 1 else 'the baseline is better'} "
              "at equal wall time)")


if __name__ == "__main__":
    main()
