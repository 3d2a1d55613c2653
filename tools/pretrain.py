"""Train the course's own GPT and write checkpoints/course-gpt/ (what `make pretrain` runs).

    python tools/pretrain.py                  # the full run: PRETRAIN_CONFIG of chapter 4 (about an hour)
    python tools/pretrain.py --fresh          # discard an interrupted run's state and start over
    python tools/pretrain.py --max-steps 100 --note "..."   # a short run (same format), for development

Data-parallel, on N processes of this machine (`make pretrain NPROC=N` runs this):

    torchrun --standalone --nproc_per_node=N tools/pretrain.py

Under torchrun every process trains on 1/N of each batch (chapter 4, section "Training on many
devices"): nccl on CUDA GPUs, gloo on the CPU. Multi-node and Slurm commands: see the README.

The training code is chapter 4's (`llmscratch.train.pretrain` and `pretrain_data_parallel`, exported
from lessons/04-pretraining.md). An interrupted run keeps its state in _build/pretrain/ (or the
data-parallel run's _build/pretrain-ddp/) and continues when the same command is rerun.
"""
import argparse
import os
import signal
import sys

# Passive OpenMP threads sleep instead of spinning while they wait. On a 2-core machine shared with
# other jobs this made training about 4x faster; on an idle one it cost about 5 % (bench/bench_train.py
# --wait-policy). It must be set before torch is imported; set OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

UNDER_TORCHRUN = "WORLD_SIZE" in os.environ or "RANK" in os.environ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--max-steps", type=int, help="a shorter run than PRETRAIN_CONFIG.max_steps")
    parser.add_argument("--threads", type=int, help="PyTorch threads per process (default: PyTorch's choice; "
                                                    "under torchrun, the cores divided by the local processes)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (needs a C++ compiler). On an idle 2-core CPU it was "
                             "5%% slower than eager mode, on a busy shared one 1.2x faster: see bench/bench_train.py")
    parser.add_argument("--note", default="", help="a line for the model card (e.g. 'preliminary')")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny model (context 32, 64 wide, 2 layers) for tests and quick trials")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="under torchrun: micro-batches per process and step (gradient accumulation)")
    parser.add_argument("--out", help="release folder (default: checkpoints/course-gpt)")
    parser.add_argument("--work-dir", help="folder of the resumable state (default: under _build/)")
    parser.add_argument("--rendezvous-timeout", type=float, default=300.0,
                        help="under torchrun: seconds to wait for the other processes (default 300)")
    parser.add_argument("--crash-after-step", type=int, help=argparse.SUPPRESS)  # tests: a worker dies
    parser.add_argument("--crash-rank", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import dataclasses
    from pathlib import Path

    import torch

    from llmscratch import train
    from llmscratch.model import GPTConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    elif UNDER_TORCHRUN and "OMP_NUM_THREADS" not in os.environ:
        # the processes on this node share its cores (torchrun itself sets OMP_NUM_THREADS=1 for >1)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    model_cfg, train_cfg = train.COURSE_GPT_CONFIG, train.PRETRAIN_CONFIG
    work_dir = train.PRETRAIN_WORK_DIR.with_name("pretrain-ddp") if UNDER_TORCHRUN else train.PRETRAIN_WORK_DIR
    out_dir = train.PRETRAINED_DIR
    if args.tiny:
        model_cfg = GPTConfig(vocab_size=model_cfg.vocab_size, context_length=32, emb_dim=64, n_heads=4,
                              n_layers=2, drop_rate=0.1, qkv_bias=False, tie_weights=True)
        train_cfg = dataclasses.replace(train_cfg, stride=32)
        work_dir, out_dir = work_dir.with_name(work_dir.name + "-tiny"), course_tiny_dir(train)
    if args.max_steps:
        every = max(1, args.max_steps // 8)
        train_cfg = dataclasses.replace(train_cfg, max_steps=args.max_steps, eval_every=every, eval_windows=16,
                                        warmup_steps=min(train_cfg.warmup_steps, max(1, args.max_steps // 10)),
                                        sample_every=every * 4)
        work_dir = work_dir.with_name(f"{work_dir.name}-{args.max_steps}-steps")
    work_dir = Path(args.work_dir) if args.work_dir else work_dir
    out_dir = Path(args.out) if args.out else out_dir
    shown = [a for a in sys.argv[1:] if a not in (args.note, "--note")]  # the note goes into the card itself
    command = "make pretrain" if not shown else "python tools/pretrain.py " + " ".join(shown)
    note = f"\n**{args.note}**\n" if args.note else ""
    final_windows = 800 if args.max_steps is None else 128
    if args.tiny:
        final_windows = 32

    if not UNDER_TORCHRUN:
        if args.accumulation != 1:
            parser.error("--accumulation is for data-parallel runs: start them with torchrun")
        train.pretrain(model_cfg=model_cfg, train_cfg=train_cfg, out_dir=out_dir, work_dir=work_dir,
                       fresh=args.fresh, final_windows=final_windows, compile_model=args.compile,
                       checkpoint_every=min(200, train_cfg.eval_every), command=command, note=note)
        return
    if args.compile:
        parser.error("--compile is not supported in data-parallel runs")
    rank = os.environ.get("RANK", "?")

    def stopped(signum, frame):  # torchrun stops the others when one process fails
        raise SystemExit(f"rank {rank}: stopped by signal {signum}, because another process failed "
                         f"(its error is above). The last complete checkpoint in {work_dir} is intact: "
                         "rerun the same command to resume from it.")

    signal.signal(signal.SIGTERM, stopped)

    def crash(step, model):  # for the tests: this process dies without warning
        if int(rank) == args.crash_rank and step == args.crash_after_step:
            os.kill(os.getpid(), signal.SIGKILL)

    world = os.environ.get("WORLD_SIZE", "?")
    command = (f"make pretrain NPROC={world}" if not shown else
               f"torchrun ({world} processes) tools/pretrain.py " + " ".join(shown))
    train.pretrain_data_parallel(
        model_cfg=model_cfg, train_cfg=train_cfg, out_dir=out_dir, work_dir=work_dir, fresh=args.fresh,
        checkpoint_every=min(200, train_cfg.eval_every), final_windows=final_windows,
        accumulation=args.accumulation, command=command.strip(), note=note,
        on_step=crash if args.crash_after_step is not None else None, timeout_s=args.rendezvous_timeout)


def course_tiny_dir(train):
    """The tiny model's release folder: never the course checkpoint."""
    return train.PRETRAIN_WORK_DIR.with_name("course-gpt-tiny")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - one clear line per process, then the traceback
        name = type(error).__name__
        if name in ("DistributedSetupError", "CheckpointError", "ValueError"):
            sys.exit(f"rank {os.environ.get('RANK', '0')}: {name}: {error}")
        raise
