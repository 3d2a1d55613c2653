"""Chapter 3's KV cache: greedy generation with and without it, as a ratio from one run.

    python bench/bench_kvcache.py                   # 256 new tokens, 3 rounds
    python bench/bench_kvcache.py --tokens 500 --rounds 5

The model and the clock are chapter 3's (section 3.9): four layers, 256 wide, context 512,
vocabulary 8,192, one sequence of eight random prompt tokens, one thread, processor time. The two
variants take turns for several rounds and each reports its median, so a change in the machine's
load hits both alike. Both must produce the same tokens.
"""
import argparse
import statistics
import time

import torch

from llmscratch.model import GPTConfig, GPTModel, generate


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256, help="new tokens (at most 504)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.tokens <= 504 or args.rounds < 1:
        raise SystemExit("--tokens must be 1..504 (the context is 512) and --rounds at least 1")
    torch.set_num_threads(1)
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=8192, context_length=512, emb_dim=256, n_heads=4, n_layers=4,
                    drop_rate=0.0)
    model = GPTModel(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8))
    seconds = {False: [], True: []}
    outputs = {}
    for _ in range(args.rounds):
        for use_cache in (False, True):
            started = time.process_time()
            outputs[use_cache] = generate(model, prompt, args.tokens, use_cache=use_cache)
            seconds[use_cache].append(time.process_time() - started)
    assert torch.equal(outputs[False], outputs[True]), "the cache changed the tokens"
    plain, cached = (statistics.median(seconds[c]) for c in (False, True))
    print(f"{args.tokens} new tokens, one thread, processor time, median of {args.rounds} rounds: "
          f"{plain:.2f} s without the cache, {cached:.2f} s with it; speed-up x{plain / cached:.1f}")
    print("rounds without / with:", ", ".join(f"{a:.2f}/{b:.2f}" for a, b in
                                              zip(seconds[False], seconds[True])))


if __name__ == "__main__":
    main()
