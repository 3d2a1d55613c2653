"""Data-parallel scaling on this machine: 1 process against 2 processes (gloo, 127.0.0.1).

    python bench/bench_ddp.py                  # the course model, 2 rounds
    python bench/bench_ddp.py --tiny --steps 20

Both runs use the same cores: one process with all of them, or two processes with half each.
They train on the same global batch (16 windows a step; each of two processes computes 8), with
chapter 4's `train_data_parallel`. Timing starts after warm-up steps, inside the workers, so
process start-up is not counted. Rounds alternate 1 and 2 processes, and each reports its median,
so a change in the machine's load hits both alike. Scaling efficiency = tokens/s with 2 processes
/ tokens/s with 1: 100 % would mean splitting the batch costs nothing; below it, the all-reduce and
the smaller matrix products per process cost something. With 2 GPUs instead of 2 halves of one
CPU, the ideal would be 2x the tokens/s of one.
"""
import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/bench_train.py --wait-policy

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from llmscratch import train as T  # noqa: E402
from llmscratch.model import GPTConfig, GPTModel  # noqa: E402

TINY = dict(context_length=32, emb_dim=64, n_heads=4, n_layers=2)


def timed_run(model_cfg, train_cfg, train_ids, val_ids, warmup: int) -> float:
    """On each rank: train, time the steps after `warmup`; tokens/s of the whole group."""
    T.init_distributed(timeout_s=120)
    try:
        torch.manual_seed(0)
        model = GPTModel(model_cfg)
        stamps = {}
        T.train_data_parallel(model, train_ids, val_ids, train_cfg, show_progress=False,
                              on_step=lambda step, _: stamps.__setitem__(step, time.perf_counter()))
        timed = train_cfg.max_steps - warmup
        tokens = timed * train_cfg.batch_size * model_cfg.context_length
        return tokens / (stamps[train_cfg.max_steps] - stamps[warmup])
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny model (context 32, 64 wide, 2 layers)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per run (default 6)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="cores to share: 1 process gets all, each of 2 processes half (default: all)")
    args = parser.parse_args()
    if args.threads < 2:
        parser.error("--threads must be at least 2, so that each of 2 processes gets one")

    model_cfg = T.COURSE_GPT_CONFIG
    if args.tiny:
        model_cfg = GPTConfig(**{**model_cfg.to_dict(), **TINY})
    train_cfg = dataclasses.replace(T.PRETRAIN_CONFIG, max_steps=args.warmup + args.steps, eval_every=0,
                                    sample_every=0, stride=model_cfg.context_length)
    train_ids, val_ids = T.train_val_split(T.corpus_token_ids())
    load_start = os.getloadavg()[0]
    speeds = {1: [], 2: []}
    for round_ in range(args.rounds):
        for world in (1, 2):
            tps = T.run_on_processes(world, timed_run, model_cfg, train_cfg, train_ids, val_ids,
                                     args.warmup, threads=args.threads // world, timeout_s=1800)[0]
            speeds[world].append(tps)
            print(f"round {round_ + 1}: {world} process(es) x {args.threads // world} thread(s): "
                  f"{tps:,.0f} tokens/s", flush=True)
    one, two = (statistics.median(speeds[w]) for w in (1, 2))
    print(f"\nmodel: {'tiny' if args.tiny else 'course'} ({model_cfg.n_layers} layers, {model_cfg.emb_dim} wide), "
          f"global batch {train_cfg.batch_size} x {model_cfg.context_length} tokens, "
          f"{args.steps} timed steps, median of {args.rounds} round(s)")
    print(f"1 process  x {args.threads} threads: {one:,.0f} tokens/s")
    print(f"2 processes x {args.threads // 2} threads: {two:,.0f} tokens/s")
    print(f"scaling efficiency (2 processes / 1 on the same cores): {two / one:.0%}")
    print(f"load average (1 min) {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"(about {args.threads} is this benchmark alone)")


if __name__ == "__main__":
    main()
